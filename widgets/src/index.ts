// The notebook panel of a VelocityFL sweep (an anywidget ESM module).
//
// Python owns the state (traitlets, see velocity/panel/widget.py); this module renders it.
// Round rows arrive as custom messages `{kind: "rows", start, rows}` and are inserted into the
// named Vega data set "rounds" of the already-embedded charts: no re-embed per round.
import embed from "vega-embed";
import type { View } from "vega";
import { changeset, Error as LOG_ERRORS_ONLY } from "vega";
import {
  IID_POSITION,
  RowBatcher,
  SLIDER_MAX,
  alphaToSlider,
  formatAlpha,
  formatChange,
  formatInterval,
  formatNumber,
  checkNumber,
  diverged,
  NUMBER_RULES,
  partitionLabel,
  newRows,
  rankRuns,
  settingNames,
  shownEntries,
  sliderToAlpha,
  statusLine,
  verdictRank,
  type AttackStrength,
  type Counts,
  type Preset,
  type RankBy,
  type RoundRow,
  type RunEntry,
  type Verdict,
} from "./logic";

/** The part of anywidget's model this module uses (also implemented by the static snapshot). */
export interface PanelModel {
  get(name: string): any;
  set(name: string, value: unknown): void;
  save_changes(): void;
  send(content: unknown): void;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event: string, callback: (...args: any[]) => void): void;
}

type ChartName = "progress" | "heatmap" | "defence" | "clients" | "labels";
const ROUNDS = "rounds";
const LABELS = "labels";
const CELLS = "cells";
const CLIENTS = "clients";
/** The line charts' parameter naming the runs drawn (velocity/panel/charts.py: SHOWN_RUNS). */
const SHOWN_RUNS = "shown_runs";
/** The chart tabs, in order. */
const VIEW_TITLES: Record<ChartName, string> = {
  progress: "Accuracy and loss",
  heatmap: "Final accuracy",
  defence: "Defence",
  clients: "Per client",
  labels: "Label distribution",
};

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

/**
 * The embedded Vega views and the data they show. Every change goes through one queue, so a
 * chart re-embedded with a new spec (a new strategy or attack gets its colour or dash) is
 * filled with exactly the data the others have: rows inserted before it are in its copy, rows
 * inserted after go to it like to the others.
 */
class Charts {
  private views = new Map<ChartName, View>();
  private specs = new Map<ChartName, string>();
  private data = new Map<string, object[]>([[ROUNDS, []], [LABELS, []], [CELLS, []], [CLIENTS, []]]);
  private shownRuns: number[] | null = null;
  private queue: Promise<void> = Promise.resolve();
  inserted = 0;

  constructor(
    private readonly host: HTMLElement,
    specs: Record<ChartName, object>,
  ) {
    this.setSpecs(specs);
  }

  /** Run `op` after every change queued before it; a failing change does not stop the next. */
  private enqueue(op: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(op).catch((error) => console.error("VelocityFL panel:", error));
    return this.queue;
  }

  /** Embed the charts whose spec differs from the one shown (all of them the first time). */
  setSpecs(specs: Record<ChartName, object>): Promise<void> {
    return this.enqueue(async () => {
      const changed = (Object.keys(specs) as ChartName[]).filter((name) => this.specs.get(name) !== JSON.stringify(specs[name]));
      await Promise.all(changed.map((name) => this.embedOne(name, specs[name])));
    });
  }

  private async embedOne(name: ChartName, spec: object): Promise<void> {
    const slot = this.host.querySelector(`[data-chart="${name}"]`) as HTMLElement;
    this.views.get(name)?.finalize();
    const result = await embed(slot, spec as any, {
      renderer: "svg",
      mode: "vega-lite",
      // an empty data set (before the first round) is expected, not worth a warning
      logLevel: LOG_ERRORS_ONLY,
      // Export as PNG/SVG works offline (at twice the size shown, for slides); the editor
      // links would need the network.
      actions: { export: true, source: false, compiled: false, editor: false },
      scaleFactor: 2,
    });
    const view = result.view;
    this.views.set(name, view);
    this.specs.set(name, JSON.stringify(spec));
    for (const [dataset, rows] of this.data) {
      if (reads(view, dataset) && rows.length > 0) view.change(dataset, changeset().insert(rows));
    }
    if (hasSignal(view, SHOWN_RUNS)) view.signal(SHOWN_RUNS, this.shownRuns);
    await view.runAsync();
  }

  private change(dataset: string, rows: object[], replace: boolean): Promise<void> {
    return this.enqueue(async () => {
      this.data.set(dataset, replace ? rows : [...(this.data.get(dataset) ?? []), ...rows]);
      const runs: Promise<unknown>[] = [];
      for (const view of this.views.values()) {
        if (!reads(view, dataset)) continue;
        const cs = replace ? changeset().remove(() => true).insert(rows) : changeset().insert(rows);
        runs.push(view.change(dataset, cs).runAsync());
      }
      await Promise.all(runs);
    });
  }

  async insertRounds(rows: RoundRow[]): Promise<void> {
    this.inserted += rows.length;
    await this.change(ROUNDS, rows, false);
    this.host.dataset.rowsDrawn = String(this.inserted);
  }

  replaceLabels(rows: object[]): Promise<void> {
    return this.change(LABELS, rows, true);
  }

  replaceCells(rows: object[]): Promise<void> {
    return this.change(CELLS, rows, true);
  }

  replaceClients(rows: object[]): Promise<void> {
    return this.change(CLIENTS, rows, true);
  }

  /** Draw only these runs in the line charts (null: every run). */
  showRuns(runs: number[] | null): Promise<void> {
    return this.enqueue(async () => {
      this.shownRuns = runs;
      await Promise.all(
        [...this.views.values()].filter((view) => hasSignal(view, SHOWN_RUNS)).map((view) => view.signal(SHOWN_RUNS, runs).runAsync()),
      );
    });
  }

  whenReady(): Promise<void> {
    return this.queue;
  }

  finalize(): void {
    for (const view of this.views.values()) view.finalize();
  }
}

function reads(view: View, dataset: string): boolean {
  try {
    view.data(dataset);
    return true;
  } catch {
    return false; // this view does not read that data set
  }
}

function hasSignal(view: View, name: string): boolean {
  try {
    view.signal(name);
    return true;
  } catch {
    return false;
  }
}

function checkboxGroup(
  name: string,
  options: string[],
  selected: string[],
  help: Record<string, string>,
  disabled: boolean,
  onChange: (values: string[]) => void,
): HTMLElement {
  const group = h("div", { class: "vfl-choices", "data-control": name });
  for (const option of options) {
    const box = h("input", { type: "checkbox", value: option }) as HTMLInputElement;
    box.checked = selected.includes(option);
    box.disabled = disabled;
    box.addEventListener("change", () => {
      const values = Array.from(group.querySelectorAll<HTMLInputElement>("input:checked")).map((b) => b.value);
      onChange(values);
    });
    group.append(h("label", { class: "vfl-chip", title: help[option] ?? "" }, box, option));
  }
  return group;
}

/**
 * A number field checked as it is typed: a valid value goes to the model, an invalid one marks
 * the field, says why in `problems` and is not sent (the model keeps its last valid value, and
 * Run is disabled until the field is fixed).
 */
function numberInput(
  name: keyof typeof NUMBER_RULES,
  value: number,
  attrs: Record<string, string>,
  disabled: boolean,
  problems: Map<string, string>,
  onProblems: () => void,
  onChange: (v: number) => void,
): HTMLInputElement {
  const input = h("input", { type: "number", "data-control": name, "data-help": attrs.title ?? "", ...attrs }) as HTMLInputElement;
  input.value = String(value);
  input.disabled = disabled;
  const check = (send: boolean) => {
    const { value: v, error } = checkNumber(NUMBER_RULES[name], input.value);
    input.classList.toggle("vfl-invalid", error !== null);
    input.title = error ?? input.dataset.help ?? "";
    if (error === null) problems.delete(name);
    else problems.set(name, error);
    onProblems();
    if (send && v !== null) onChange(v);
  };
  input.addEventListener("input", () => check(false));
  input.addEventListener("change", () => check(true));
  return input;
}

const RANKING_HEADERS = ["#", "run", "status", "accuracy", "Δ acc vs clean", "loss", "Δ loss vs clean", "attack success", "malicious share", "ε"];
/** Columns shown only when a run has them (the table's vfl-with-success / vfl-with-epsilon). */
const HEADER_CLASS: Record<string, string> = { "attack success": "vfl-success", ε: "vfl-epsilon" };

function renderTable(body: HTMLTableSectionElement, runs: RunEntry[], by: RankBy, shown: number[] | null): void {
  body.replaceChildren();
  // the attack-success column only when a targeted attack (backdoor, targeted flipping) ran
  const success = runs.some((e) => e.attack_success !== null && e.attack_success !== undefined);
  body.closest("table")?.classList.toggle("vfl-with-success", success);
  // the privacy column only when a run has DP
  const privacy = runs.some((e) => e.dp_epsilon != null || e.server_dp_epsilon != null);
  body.closest("table")?.classList.toggle("vfl-with-epsilon", privacy);
  for (const { entry, rank, leader } of rankRuns(shownEntries(runs, shown), by)) {
    const row = h("tr", { "data-status": entry.status, "data-run": entry.run });
    if (leader) row.classList.add("vfl-leader");
    const progress = `${entry.status}${entry.rounds_total ? ` ${entry.rounds_done}/${entry.rounds_total}` : ""}`;
    const name = h("td", { class: "vfl-run" }, `${entry.strategy}`, h("span", { class: "vfl-dim" }, ` · ${entry.attack_shown} · ${entry.setting} · seed ${entry.seed}`));
    if (entry.error) {
      name.append(h("div", { class: "vfl-error" }, entry.error));
      name.title = entry.error;
    }
    row.append(
      h("td", { class: "vfl-rank" }, leader ? "★ 1" : rank === null ? "" : String(rank)),
      name,
      h("td", { class: `vfl-status-cell vfl-${entry.status}` }, progress),
      h("td", { class: "vfl-num" }, formatNumber(entry.accuracy)),
      h("td", { class: "vfl-num vfl-change" }, formatChange(entry.accuracy_change)),
      diverged(entry)
        ? h("td", { class: "vfl-num vfl-warn", title: "the loss is not finite: the model diverged" }, "diverged")
        : h("td", { class: "vfl-num" }, formatNumber(entry.loss, 4)),
      h("td", { class: "vfl-num vfl-change" }, formatChange(entry.loss_change, 4)),
      h("td", { class: "vfl-num vfl-success", title: "the targeted attack's success rate" }, entry.attack_success === null || entry.attack_success === undefined ? "" : formatNumber(entry.attack_success, 2)),
      defenceCell(entry),
      epsilonCell(entry),
    );
    body.append(row);
  }
}

/** The privacy spent: DP-SGD's ε (per example) and server DP's (per client), whichever the run has. */
function epsilonCell(entry: RunEntry): HTMLTableCellElement {
  const parts: string[] = [];
  if (entry.dp_epsilon != null) parts.push(`${formatNumber(entry.dp_epsilon, 2)} (DP-SGD)`);
  if (entry.server_dp_epsilon != null) parts.push(`${formatNumber(entry.server_dp_epsilon, 2)} (server)`);
  return h(
    "td",
    { class: "vfl-num vfl-epsilon", title: "ε(δ) spent so far: DP-SGD per example (its largest client), server DP per client (the mean only)" },
    parts.join(" · "),
  );
}

/** The malicious updates' share of the aggregate against their share of the weights. */
function defenceCell(entry: RunEntry): HTMLTableCellElement {
  const cell = h("td", { class: "vfl-num vfl-defence" });
  if (entry.malicious_share !== null) {
    cell.append(formatNumber(entry.malicious_share, 2));
    if (entry.malicious_weight !== null) cell.append(h("span", { class: "vfl-dim" }, ` of ${formatNumber(entry.malicious_weight, 2)}`));
  }
  if (entry.defence_note) cell.append(h("div", { class: "vfl-warn" }, entry.defence_note));
  return cell;
}

/** The verdict: per α, strategies by worst-case accuracy under the sweep's attacks, ties marked. */
function renderVerdict(box: HTMLElement, verdict: Verdict): void {
  const rows = verdict.table ?? [];
  if (rows.length === 0) {
    box.replaceChildren(h("div", { class: "vfl-dim" }, "The verdict appears when attacked runs have finished."));
    return;
  }
  const body = h("tbody");
  for (const row of rows) {
    const tr = h("tr", { "data-strategy": row.strategy, "data-alpha": row.alpha });
    if (row.rank === 1) tr.classList.add("vfl-leader");
    else if (row.tied_with_best === true) tr.classList.add("vfl-tied");
    tr.append(
      h("td", {}, partitionLabel(row.alpha)),
      h("td", { class: "vfl-rank" }, verdictRank(row)),
      h("td", { class: "vfl-run" }, row.strategy),
      h("td", { class: "vfl-num" }, formatInterval(row.clean_accuracy, row.clean_accuracy_ci95)),
      h("td", { class: "vfl-num" }, formatInterval(row.worst_case_accuracy, row.worst_case_accuracy_ci95)),
      h("td", {}, row.worst_attack ?? ""),
      h("td", { class: "vfl-num" }, formatInterval(row.mean_attacked_accuracy, row.mean_attacked_accuracy_ci95)),
      h("td", {}, row.versus_best),
    );
    body.append(tr);
  }
  const head = ["α", "#", "strategy", "clean", "worst case", "worst attack", "mean attacked", "vs best"];
  const notes = [...(verdict.single_seed ? ["One seed per configuration: no intervals or tests; close values may be noise (use more seeds)."] : []), ...(verdict.notices ?? [])];
  box.replaceChildren(
    h("table", { class: "vfl-table", "data-role": "verdict" }, h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))), body),
    ...notes.map((n) => h("div", { class: "vfl-notice" }, n)),
  );
}

/**
 * Keys pressed in one of the panel's controls belong to that control. JupyterLab and Notebook 7
 * read keydown at the document for their shortcuts (← in command mode collapses the heading, A
 * inserts a cell…), Notebook 7 in the capture phase, where it also cancels the key's default
 * action, so the slider would not move. The panel therefore stops such events at the window, in
 * the capture phase, before any document listener sees them; keys pressed elsewhere in the panel
 * reach the notebook as usual. Returns the function that removes the listeners.
 */
export function keepKeysInControls(root: HTMLElement): () => void {
  const view = root.ownerDocument.defaultView ?? window;
  const stop = (event: Event) => {
    if (event.target instanceof Node && root.contains(event.target) && isControl(event.target)) event.stopPropagation();
  };
  const types = ["keydown", "keyup", "keypress"];
  for (const type of types) view.addEventListener(type, stop, true);
  return () => {
    for (const type of types) view.removeEventListener(type, stop, true);
  };
}

function isControl(target: EventTarget | null): boolean {
  return target instanceof Element && target.closest("input, select, textarea, button, [contenteditable='true']") !== null;
}

function render({ model, el }: { model: PanelModel; el: HTMLElement }): () => void {
  const isStatic = Boolean(model.get("static"));
  const root = h("div", { class: "vfl-panel" });
  el.append(root);
  const releaseKeys = keepKeysInControls(root);

  // ------------------------------------------------------------ status line
  const status = h("div", { class: "vfl-status", "data-role": "status" });
  const message = h("div", { class: "vfl-message", "data-role": "message" });
  const updateStatus = () => {
    status.textContent = statusLine((model.get("counts") ?? {}) as Counts);
    const text = String(model.get("message") ?? "");
    message.textContent = text;
    message.hidden = text === "";
    root.dataset.running = String(Boolean(model.get("running")));
  };

  // ------------------------------------------------------------ controls
  const controls = h("div", { class: "vfl-controls" });
  const slider = h("input", { type: "range", min: "0", max: String(SLIDER_MAX), step: "1", "data-control": "alpha" }) as HTMLInputElement;
  const alphaText = h("span", { class: "vfl-alpha", "data-role": "alpha" });
  const showAlpha = (alpha: number | null) => {
    slider.value = String(alphaToSlider(alpha));
    alphaText.textContent = formatAlpha(alpha);
  };
  slider.disabled = isStatic;
  slider.addEventListener("input", () => {
    const alpha = sliderToAlpha(Number(slider.value));
    alphaText.textContent = formatAlpha(alpha);
    model.set("alpha", alpha);
    model.save_changes();
  });
  const iidBox = h("button", { type: "button", class: "vfl-small", "data-control": "iid" }, "iid") as HTMLButtonElement;
  iidBox.disabled = isStatic;
  // a shard, pathological or natural partition has no α: the slider is off and says why
  const alphaNote = h("span", { class: "vfl-dim", "data-role": "alpha-note" });
  const showAlphaNote = () => {
    const note = String(model.get("alpha_note") ?? "");
    slider.disabled = iidBox.disabled = isStatic || note !== "";
    alphaNote.textContent = note;
    alphaNote.hidden = note === "";
    alphaText.hidden = note !== "";
  };
  iidBox.addEventListener("click", () => {
    slider.value = String(IID_POSITION);
    slider.dispatchEvent(new Event("input"));
  });

  const setAndSave = (name: string) => (value: unknown) => {
    model.set(name, value);
    model.save_changes();
  };
  const choiceSlot = h("div", { class: "vfl-choice-slot" });
  const renderChoices = () => {
    choiceSlot.replaceChildren(
      h("div", { class: "vfl-field" }, h("span", { class: "vfl-label" }, "strategies"),
        checkboxGroup("strategies", model.get("strategy_options") ?? [], model.get("strategies") ?? [], model.get("option_help") ?? {}, isStatic, setAndSave("strategies"))),
      h("div", { class: "vfl-field" }, h("span", { class: "vfl-label" }, "attacks"),
        checkboxGroup("attacks", model.get("attack_options") ?? [], model.get("attacks") ?? [], model.get("option_help") ?? {}, isStatic, setAndSave("attacks"))),
    );
  };
  const problems = new Map<string, string>();
  const inputError = h("div", { class: "vfl-input-error", "data-role": "input-error" });
  const runButton = h("button", { type: "button", class: "vfl-run-button", "data-action": "run" }, "Run") as HTMLButtonElement;
  const showProblems = () => {
    inputError.textContent = [...problems.values()].join("; ");
    inputError.hidden = problems.size === 0;
    runButton.disabled = isStatic || problems.size > 0;
  };
  const field = (name: keyof typeof NUMBER_RULES, attrs: Record<string, string>) =>
    numberInput(name, model.get(name), attrs, isStatic, problems, showProblems, setAndSave(name));
  const fraction = field("malicious_fraction", { min: "0", max: "0.95", step: "0.05" });
  const rounds = field("rounds", { min: "1", step: "1" });
  const clients = field("clients", { min: "1", step: "1" });
  const seeds = field("seeds", { min: "1", step: "1", title: "seeds per combination: with several, the accuracy chart shades the 95 % interval over them" });
  // where new runs train: the devices this machine has (Python lists them; "auto" first)
  const deviceSelect = h("select", { "data-control": "device", title: "where new runs train: auto takes a CUDA GPU, then Apple MPS, then the CPU" }) as HTMLSelectElement;
  deviceSelect.disabled = isStatic;
  const renderDevices = () => {
    const options = (model.get("device_options") ?? []) as string[];
    deviceSelect.replaceChildren(...options.map((name) => h("option", { value: name }, name)));
    deviceSelect.value = String(model.get("device") ?? "auto");
  };
  deviceSelect.addEventListener("change", () => setAndSave("device")(deviceSelect.value));
  const stopButton = h("button", { type: "button", "data-action": "stop" }, "Stop") as HTMLButtonElement;
  const resetButton = h("button", { type: "button", "data-action": "reset", title: "the controls as they were when the panel opened (the runs stay)" }, "Reset") as HTMLButtonElement;
  resetButton.disabled = isStatic;
  resetButton.addEventListener("click", () => model.send({ kind: "reset" }));

  // a preset scenario sets the controls (Python knows them); Run then queues it
  const presetSelect = h("select", { "data-control": "preset" }) as HTMLSelectElement;
  presetSelect.disabled = isStatic;
  const renderPresets = () => {
    const presets = (model.get("presets") ?? []) as Preset[];
    presetSelect.replaceChildren(
      h("option", { value: "" }, "choose a scenario…"),
      ...presets.map((p) => h("option", { value: p.name, title: p.summary }, p.name)),
    );
  };
  presetSelect.addEventListener("change", () => {
    if (presetSelect.value) model.send({ kind: "preset", name: presetSelect.value });
    presetSelect.value = "";
  });

  // an attack at a chosen strength (sign-flip scale, IPM ε, ALIE z…) becomes a choice of its own
  const strengthAttack = h("select", { "data-control": "strength-attack" }) as HTMLSelectElement;
  const strengthParam = h("span", { class: "vfl-dim", "data-role": "strength-param" });
  const strengthValue = h("input", { type: "number", step: "any", "data-control": "strength-value" }) as HTMLInputElement;
  const strengthAdd = h("button", { type: "button", class: "vfl-small", "data-action": "add-strength" }, "add") as HTMLButtonElement;
  const strengthHelp = h("span", { class: "vfl-dim vfl-help", "data-role": "strength-help" });
  for (const control of [strengthAttack, strengthValue, strengthAdd]) control.disabled = isStatic;
  const strengths = () => (model.get("attack_strengths") ?? []) as AttackStrength[];
  const showStrength = () => {
    const info = strengths().find((a) => a.attack === strengthAttack.value);
    strengthParam.textContent = info ? `${info.param} =` : "";
    strengthValue.value = info?.default === null || info?.default === undefined ? "" : String(info.default);
    strengthValue.placeholder = info?.default === null ? "derived" : "";
    strengthHelp.textContent = info ? info.help : "";
  };
  const renderStrengths = () => {
    strengthAttack.replaceChildren(...strengths().map((a) => h("option", { value: a.attack }, a.attack)));
    showStrength();
  };
  strengthAttack.addEventListener("change", showStrength);
  strengthAdd.addEventListener("click", () => {
    // a number, or what was typed (Python says what it expected); an empty field sends null
    const text = strengthValue.value.trim();
    const value = text === "" ? null : Number.isFinite(Number(text)) ? Number(text) : text;
    model.send({ kind: "strength", attack: strengthAttack.value, value });
  });
  // Run carries the controls as shown: state changes reach the kernel one at a time, this
  // message at once, so a slider moved just before Run might not have arrived yet.
  const CONTROLS = ["alpha", "strategies", "attacks", "malicious_fraction", "rounds", "clients", "seeds", "device"];
  runButton.addEventListener("click", () =>
    model.send({ kind: "run", controls: Object.fromEntries(CONTROLS.map((name) => [name, model.get(name)])) }),
  );
  showProblems();
  stopButton.addEventListener("click", () => model.send({ kind: "stop" }));
  const updateButtons = () => {
    stopButton.disabled = isStatic || !model.get("running");
  };
  controls.append(
    h("div", { class: "vfl-field" }, h("span", { class: "vfl-label" }, "scenario"), presetSelect),
    h("div", { class: "vfl-field vfl-alpha-field" }, h("span", { class: "vfl-label" }, "Dirichlet α"), slider, iidBox, alphaText, alphaNote),
    choiceSlot,
    h("div", { class: "vfl-field vfl-strength" }, h("span", { class: "vfl-label" }, "strength"), strengthAttack, strengthParam, strengthValue, strengthAdd, strengthHelp),
    h("div", { class: "vfl-field vfl-numbers" },
      h("label", {}, h("span", { class: "vfl-label" }, "malicious"), fraction),
      h("label", {}, h("span", { class: "vfl-label" }, "rounds"), rounds),
      h("label", {}, h("span", { class: "vfl-label" }, "clients"), clients),
      h("label", {}, h("span", { class: "vfl-label" }, "seeds"), seeds),
      h("label", {}, h("span", { class: "vfl-label" }, "device"), deviceSelect),
      runButton, stopButton, resetButton),
    inputError,
  );

  // ------------------------------------------------------------ charts, one at a time
  // One chart shown at a time keeps the panel within a laptop's notebook area; the tab strip
  // says what else there is.
  const chartsBox = h(
    "div",
    { class: "vfl-charts" },
    h("div", { class: "vfl-chart", "data-chart": "progress" }),
    h("div", { class: "vfl-chart", "data-chart": "heatmap" }),
    h("div", { class: "vfl-chart", "data-chart": "defence" }),
    h("div", { class: "vfl-chart vfl-chart-col", "data-chart-box": "clients" },
      h("div", { class: "vfl-field" }, h("label", {}, h("span", { class: "vfl-dim" }, "run "), h("select", { "data-control": "client_run" })),
        h("span", { class: "vfl-dim", "data-role": "client-note" })),
      h("div", { "data-chart": "clients" })),
    h("div", { class: "vfl-chart vfl-chart-col", "data-chart-box": "labels" },
      h("div", { "data-chart": "labels" }),
      h("div", { class: "vfl-dim", "data-role": "label-note" })),
  );
  const tabs = h("div", { class: "vfl-tabs", role: "tablist", "data-role": "chart-tabs" });
  const showView = (view: ChartName) => {
    for (const button of tabs.querySelectorAll<HTMLButtonElement>("button")) {
      const on = button.dataset.view === view;
      button.classList.toggle("vfl-tab-on", on);
      button.setAttribute("aria-selected", String(on));
    }
    for (const name of Object.keys(VIEW_TITLES) as ChartName[]) {
      const box = chartsBox.querySelector(`[data-chart-box="${name}"]`) ?? chartsBox.querySelector(`[data-chart="${name}"]`);
      (box as HTMLElement).hidden = name !== view;
    }
  };
  const chooseView = (view: ChartName) => {
    showView(view); // at once, also in a static snapshot, whose model keeps nothing
    if (model.get("view") !== view) setAndSave("view")(view);
  };
  for (const [name, title] of Object.entries(VIEW_TITLES)) {
    const button = h("button", { type: "button", role: "tab", class: "vfl-tab", "data-view": name }, title) as HTMLButtonElement;
    button.addEventListener("click", () => chooseView(name as ChartName));
    tabs.append(button);
  }
  // Moving α is about the data: show what it does to them.
  slider.addEventListener("input", () => chooseView("labels"));
  const labelNote = chartsBox.querySelector('[data-role="label-note"]') as HTMLElement;
  const clientNote = chartsBox.querySelector('[data-role="client-note"]') as HTMLElement;
  const clientRun = chartsBox.querySelector('select[data-control="client_run"]') as HTMLSelectElement;
  clientRun.addEventListener("change", () => setAndSave("client_run")(clientRun.value === "" ? null : Number(clientRun.value)));
  const renderClientRuns = () => {
    const runs = (model.get("runs") ?? []) as RunEntry[];
    const chosen = model.get("client_run");
    clientRun.replaceChildren(
      h("option", { value: "" }, "the first attacked run"),
      ...runs.map((e) => h("option", { value: String(e.index) }, `${e.strategy} · ${e.attack_shown} · ${e.setting} · seed ${e.seed}`)),
    );
    clientRun.value = chosen === null || chosen === undefined ? "" : String(chosen);
  };
  const charts = new Charts(chartsBox, model.get("specs"));

  // ------------------------------------------------------------ which setting is shown
  const showSelect = h("select", { "data-control": "show_setting" }) as HTMLSelectElement;
  showSelect.addEventListener("change", () => setAndSave("show_setting")(showSelect.value));
  const showHint = h("span", { class: "vfl-dim", "data-role": "show-hint" });
  const showField = h("span", { class: "vfl-show" }, h("label", {}, "runs of ", showSelect), showHint);
  const updateShow = () => {
    const names = settingNames((model.get("runs") ?? []) as RunEntry[]);
    const chosen = String(model.get("show_setting") ?? "");
    showSelect.replaceChildren(
      h("option", { value: "" }, "every setting"),
      ...names.map((name) => h("option", { value: name }, name)),
    );
    showSelect.value = chosen;
    showField.hidden = names.length < 2 && chosen === "";
    showHint.textContent = chosen === "" && names.length > 1 ? ` the lines and the table mix ${names.length} settings: choose one to compare like with like` : "";
  };
  const updateShownRuns = () => {
    void charts.showRuns((model.get("shown_runs") ?? null) as number[] | null);
    updateTable();
  };

  // ------------------------------------------------------------ ranking table
  const rankSelect = h("select", { "data-control": "rank_by" }, h("option", { value: "accuracy" }, "accuracy"), h("option", { value: "loss" }, "loss")) as HTMLSelectElement;
  rankSelect.value = model.get("rank_by") ?? "accuracy";
  rankSelect.addEventListener("change", () => setAndSave("rank_by")(rankSelect.value));
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "vfl-table", "data-role": "ranking" },
    h("thead", {}, h("tr", {}, ...RANKING_HEADERS.map((t) => h("th", HEADER_CLASS[t] ? { class: HEADER_CLASS[t] } : {}, t)))),
    tbody,
  );
  const updateTable = () => {
    const by = (model.get("rank_by") ?? "accuracy") as RankBy;
    rankSelect.value = by;
    renderTable(tbody, (model.get("runs") ?? []) as RunEntry[], by, (model.get("shown_runs") ?? null) as number[] | null);
  };

  // ------------------------------------------------------------ verdict
  const verdictBox = h("div", { class: "vfl-verdict", "data-role": "verdict-box" });
  const updateVerdict = () => renderVerdict(verdictBox, (model.get("verdict") ?? {}) as Verdict);

  // ------------------------------------------------------------ projector: everything larger
  const projectorButton = h("button", { type: "button", class: "vfl-small vfl-projector-button", "data-control": "projector", title: "larger text and charts, for a projector" }, "A+") as HTMLButtonElement;
  const showProjector = () => {
    const on = Boolean(model.get("projector"));
    root.classList.toggle("vfl-projector", on);
    projectorButton.setAttribute("aria-pressed", String(on));
  };
  projectorButton.addEventListener("click", () => {
    root.classList.toggle("vfl-projector"); // at once, also in a static snapshot
    setAndSave("projector")(root.classList.contains("vfl-projector"));
  });

  root.append(
    h("div", { class: "vfl-header" }, h("strong", {}, "VelocityFL sweep"), status, projectorButton),
    message,
    controls,
    h("div", { class: "vfl-view-bar" }, tabs, showField),
    chartsBox,
    h("div", { class: "vfl-table-head" }, h("strong", {}, "Verdict"), h("span", { class: "vfl-dim" }, " accuracy under the sweep's attacks: worst case per seed, mean ± 95 % interval; ≈ 1: the paired test cannot tell it from the best")),
    verdictBox,
    h("div", { class: "vfl-table-head" }, h("strong", {}, "Runs"), h("label", {}, " by ", rankSelect)),
    table,
  );

  // ------------------------------------------------------------ streaming rows
  let have = 0;
  let replayAsked = false; // one replay request at a time: its answer covers every later gap
  const askReplay = () => {
    if (replayAsked) return;
    replayAsked = true;
    model.send({ kind: "replay", have });
  };
  const batcher = new RowBatcher((rows) => void charts.insertRounds(rows), 150);
  const onMessage = (msg: any) => {
    if (!msg || msg.kind !== "rows") return;
    const { fresh, gapFrom } = newRows(have, msg.start, msg.rows as RoundRow[]);
    if (gapFrom !== null) {
      askReplay();
      return;
    }
    replayAsked = false;
    have += fresh.length;
    root.dataset.rowsReceived = String(have);
    batcher.push(fresh);
  };
  model.on("msg:custom", onMessage);

  const updateCells = () => void charts.replaceCells((model.get("cells") ?? []) as object[]);
  const updateClients = () => {
    void charts.replaceClients((model.get("client_rows") ?? []) as object[]);
    clientNote.textContent = String(model.get("client_note") ?? "");
  };
  const updateLabels = () => {
    void charts.replaceLabels((model.get("label_rows") ?? []) as object[]);
    labelNote.textContent = String(model.get("label_note") ?? "");
  };
  const onAlpha = () => showAlpha(model.get("alpha"));
  const onNumbers = () => {
    for (const [input, name] of [[fraction, "malicious_fraction"], [rounds, "rounds"], [clients, "clients"], [seeds, "seeds"]] as const) {
      input.value = String(model.get(name));
      input.classList.remove("vfl-invalid");
      input.title = input.dataset.help ?? "";
      problems.delete(name);
    }
    showProblems();
  };
  const listeners: [string, () => void][] = [
    ["change:counts", updateStatus],
    ["change:message", updateStatus],
    ["change:running", () => (updateStatus(), updateButtons())],
    ["change:runs", () => (updateTable(), updateShow(), renderClientRuns())],
    ["change:client_run", renderClientRuns],
    ["change:client_rows", updateClients],
    ["change:client_note", updateClients],
    ["change:show_setting", updateShow],
    ["change:shown_runs", updateShownRuns],
    ["change:specs", () => void charts.setSpecs(model.get("specs"))],
    ["change:cells", updateCells],
    ["change:verdict", updateVerdict],
    ["change:rank_by", updateTable],
    ["change:label_rows", updateLabels],
    ["change:label_note", updateLabels],
    ["change:alpha", onAlpha],
    ["change:alpha_note", showAlphaNote],
    ["change:view", () => showView((model.get("view") ?? "progress") as ChartName)],
    ["change:projector", () => showProjector()],
    ["change:strategy_options", renderChoices],
    ["change:attack_options", renderChoices],
    ["change:option_help", renderChoices],
    ["change:presets", renderPresets],
    ["change:attack_strengths", renderStrengths],
    ["change:strategies", renderChoices],
    ["change:attacks", renderChoices],
    ["change:malicious_fraction", onNumbers],
    ["change:rounds", onNumbers],
    ["change:clients", onNumbers],
    ["change:seeds", onNumbers],
    ["change:device", renderDevices],
    ["change:device_options", renderDevices],
  ];
  for (const [event, cb] of listeners) model.on(event, cb);

  showAlphaNote();
  showAlpha(model.get("alpha"));
  showView((model.get("view") ?? "progress") as ChartName);
  showProjector();
  renderChoices();
  renderPresets();
  renderStrengths();
  renderDevices();
  updateStatus();
  updateButtons();
  updateTable();
  updateShow();
  renderClientRuns();
  updateVerdict();
  void charts.showRuns((model.get("shown_runs") ?? null) as number[] | null);
  void charts.whenReady().then(() => {
    updateLabels();
    updateCells();
    updateClients();
    root.dataset.chartsReady = "true";
    // Messages sent before this view existed are lost: ask Python for every row from the start.
    askReplay();
  });

  return () => {
    releaseKeys();
    model.off("msg:custom", onMessage);
    for (const [event, cb] of listeners) model.off(event, cb);
    batcher.drain();
    charts.finalize();
  };
}

/** A read-only model over saved state: what the static HTML snapshot renders with. */
export function staticModel(state: Record<string, unknown>, rows: RoundRow[]): PanelModel {
  const handlers = new Map<string, ((...args: any[]) => void)[]>();
  return {
    get: (name) => (name === "static" ? true : state[name]),
    set: () => undefined,
    save_changes: () => undefined,
    on: (event, cb) => handlers.set(event, [...(handlers.get(event) ?? []), cb]),
    off: (event, cb) => handlers.set(event, (handlers.get(event) ?? []).filter((x) => x !== cb)),
    send: (content: any) => {
      if (content?.kind === "replay") {
        for (const cb of handlers.get("msg:custom") ?? []) cb({ kind: "rows", start: 0, rows });
      }
    },
  };
}

/** Render a saved panel into `el` (used by `SweepPanel.save_html`). */
export function renderSnapshot(el: HTMLElement, state: Record<string, unknown>, rows: RoundRow[]): () => void {
  return render({ model: staticModel(state, rows), el });
}

export default { render };
