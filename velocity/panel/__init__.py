"""The notebook panel: a live anywidget dashboard of a running ``Sweep``.

>>> sweep = Sweep.from_grid(strategies=["FedAvg", "Krum"], attacks=["none", "alie"]).start()
>>> sweep.panel()          # charts, controls and a ranking that fill in round by round
"""

from velocity.panel.widget import SweepPanel

__all__ = ["SweepPanel"]
