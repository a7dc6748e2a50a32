import { describe, expect, it, vi } from "vitest";
import {
  IID_POSITION,
  RowBatcher,
  SLIDER_MAX,
  alphaToSlider,
  formatChange,
  formatInterval,
  formatNumber,
  checkNumber,
  NUMBER_RULES,
  newRows,
  rankRuns,
  roundSignificant,
  sliderToAlpha,
  statusLine,
  partitionLabel,
  verdictRank,
  type RoundRow,
  type RunEntry,
  type VerdictRow,
} from "../src/logic";

function row(run: string, round: number, accuracy: number | null = 0.5): RoundRow {
  return {
    run, index: 0, strategy: run.split(" ")[0], attack: "none", alpha: "iid", seed: 0, round, global_loss: 1, accuracy,
    attack_success: null, malicious_share: null, malicious_weight: null, clipped: null, selected_malicious: null, config: 0,
  };
}

function entry(run: string, accuracy: number | null, loss: number | null, status = "finished"): RunEntry {
  return {
    index: 0, run, strategy: run, attack: "none", alpha: "iid", setting: "iid", attack_shown: "none", seed: 0, status, rounds_done: 5, rounds_total: 5,
    accuracy, loss, accuracy_change: null, loss_change: null, attack_success: null, malicious_share: null, malicious_weight: null, defence_note: null,
    dp_epsilon: null, server_dp_epsilon: null, error: status === "failed" ? "boom" : null,
  };
}

describe("the α slider", () => {
  it("spans 0.01 to 100 on a log scale, with iid one stop past the end", () => {
    expect(sliderToAlpha(0)).toBe(0.01);
    expect(sliderToAlpha(IID_POSITION - 1)).toBe(100);
    expect(sliderToAlpha(IID_POSITION)).toBeNull();
    expect(SLIDER_MAX).toBe(IID_POSITION);
    // equal steps are equal ratios: one decade per 20 stops
    expect(sliderToAlpha(20)).toBe(0.1);
    expect(sliderToAlpha(40)).toBe(1);
    expect(sliderToAlpha(60)).toBe(10);
    expect(sliderToAlpha(41)).toBe(1.1);
  });

  it("has the values the literature uses as exact stops", () => {
    for (const alpha of [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]) {
      expect(sliderToAlpha(alphaToSlider(alpha))).toBe(alpha);
    }
  });

  it("gives every stop its own value, increasing, and maps it back to the same stop", () => {
    let previous = 0;
    for (let p = 0; p < IID_POSITION; p++) {
      const alpha = sliderToAlpha(p)!;
      expect(alpha).toBeGreaterThan(previous);
      previous = alpha;
      expect(alphaToSlider(alpha)).toBe(p);
    }
  });

  it("maps null and infinity to iid, and clamps out-of-range positions and values", () => {
    expect(alphaToSlider(null)).toBe(IID_POSITION);
    expect(alphaToSlider(Infinity)).toBe(IID_POSITION);
    expect(alphaToSlider(1e-6)).toBe(0);
    expect(alphaToSlider(1e6)).toBe(IID_POSITION - 1);
    expect(sliderToAlpha(-5)).toBe(0.01);
    expect(sliderToAlpha(10_000)).toBeNull();
  });

  it("rejects what is not an α", () => {
    expect(() => alphaToSlider(0)).toThrow("Expected alpha > 0 or null (iid), got 0");
    expect(() => alphaToSlider(-1)).toThrow(/got -1/);
    expect(() => sliderToAlpha(Number.NaN)).toThrow(/finite slider position/);
  });

  it("rounds to two significant digits", () => {
    expect(roundSignificant(0.012589)).toBe(0.013);
    expect(roundSignificant(0.31623)).toBe(0.32);
    expect(roundSignificant(31.62)).toBe(32);
    expect(roundSignificant(0)).toBe(0);
  });
});

describe("incremental rows", () => {
  const rows = [row("a", 1), row("a", 2), row("a", 3)];

  it("takes a message that starts where the view is", () => {
    expect(newRows(0, 0, rows)).toEqual({ fresh: rows, gapFrom: null });
  });

  it("drops the part of a replay the view already has", () => {
    expect(newRows(2, 0, rows).fresh).toEqual([rows[2]]);
    expect(newRows(3, 0, rows).fresh).toEqual([]);
    expect(newRows(5, 1, rows).fresh).toEqual([]);
  });

  it("asks for a replay from where the view is when a message leaves a gap", () => {
    expect(newRows(2, 4, rows)).toEqual({ fresh: [], gapFrom: 2 });
  });

  it("batches rows and flushes them at most once per interval", () => {
    vi.useFakeTimers();
    const flushed: RoundRow[][] = [];
    const batcher = new RowBatcher((r) => flushed.push(r), 200);
    batcher.push([rows[0]]);
    batcher.push([rows[1], rows[2]]);
    batcher.push([]);
    expect(flushed).toEqual([]);
    expect(batcher.size).toBe(3);
    vi.advanceTimersByTime(199);
    expect(flushed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(flushed).toEqual([rows]);
    batcher.push([rows[0]]);
    batcher.drain();
    expect(flushed).toEqual([rows, [rows[0]]]);
    vi.advanceTimersByTime(1000);
    expect(flushed.length).toBe(2);
    vi.useRealTimers();
  });
});

describe("the ranking", () => {
  const runs = [
    entry("b", 0.8, 0.5),
    entry("a", 0.9, 0.4),
    entry("c", null, null, "queued"),
    entry("d", 0.95, 0.2, "failed"),
    entry("e", 0.8, 0.3, "running"),
  ];

  it("ranks finished runs by accuracy, best first; runs still going, without a value, and failed follow unranked", () => {
    const ranked = rankRuns(runs, "accuracy");
    expect(ranked.map((r) => r.entry.run)).toEqual(["a", "b", "e", "c", "d"]);
    expect(ranked.map((r) => r.rank)).toEqual([1, 2, null, null, null]);
    expect(ranked.map((r) => r.leader)).toEqual([true, false, false, false, false]);
  });

  it("ranks by loss, lowest first", () => {
    expect(rankRuns(runs, "loss").map((r) => r.entry.run)).toEqual(["a", "b", "e", "c", "d"]);
  });

  it("breaks a tie in the metric by the other one, and lets exact ties share the rank and the star", () => {
    const ranked = rankRuns([entry("z", 0.8, 0.5), entry("y", 0.9, 0.3), entry("x", 0.9, 0.3), entry("w", 0.8, 0.4)], "accuracy");
    expect(ranked.map((r) => [r.entry.run, r.rank, r.leader])).toEqual([
      ["x", 1, true],
      ["y", 1, true],
      ["w", 3, false], // 0.8 like z, but a lower loss
      ["z", 4, false],
    ]);
  });

  it("never ranks a cancelled run among the finished ones", () => {
    const ranked = rankRuns([entry("k", 0.99, 0.1, "cancelled"), entry("f", 0.5, 1)], "accuracy");
    expect(ranked.map((r) => [r.entry.run, r.rank, r.leader])).toEqual([
      ["f", 1, true],
      ["k", null, false],
    ]);
  });

  it("puts a diverged run (infinite loss) after every run with a value", () => {
    const ranked = rankRuns([entry("x", 0.1, Infinity), entry("y", 0.2, 1)], "loss");
    expect(ranked.map((r) => [r.entry.run, r.rank])).toEqual([["y", 1], ["x", null]]);
  });

  it("does not change its input", () => {
    const copy = runs.map((r) => ({ ...r }));
    rankRuns(runs, "accuracy");
    expect(runs).toEqual(copy);
  });

  it("has no leader when nothing has a value yet", () => {
    expect(rankRuns([entry("c", null, null, "queued")], "accuracy").some((r) => r.leader)).toBe(false);
  });
});

describe("formatting", () => {
  it("shows missing values as a dash and signs changes", () => {
    expect(formatNumber(null)).toBe("–");
    expect(formatNumber(0.91234)).toBe("0.912");
    expect(formatNumber(123456)).toBe("1.23e+5");
    expect(formatNumber(Infinity)).toBe("∞");
    expect(formatChange(-0.05)).toBe("−0.050");
    expect(formatChange(0.25)).toBe("+0.250");
    expect(formatChange(null)).toBe("");
  });

  it("summarises the status counts", () => {
    expect(statusLine({ queued: 2, running: 1, finished: 3, failed: 1, rounds: 40, rounds_per_s: 12.345 })).toBe(
      "2 queued · 1 running · 3 done · 1 failed · 40 rounds · 12.3 rounds/s",
    );
    expect(statusLine({})).toBe("0 queued · 0 running · 0 done · 0 failed · 0 rounds");
  });
});

describe("the verdict's columns", () => {
  const row = (rank: number, p: number | null, tied: boolean | null): VerdictRow => ({
    alpha: "inf", rank, strategy: "S", seeds: [0], attacks: ["alie"], clean_accuracy: 0.9, clean_accuracy_ci95: null,
    worst_case_accuracy: 0.5, worst_case_accuracy_ci95: null, worst_attack: "alie", mean_attacked_accuracy: 0.5,
    mean_attacked_accuracy_ci95: null, p_vs_best: p, tied_with_best: tied, versus_best: "",
  });
  it("marks the best, the statistical ties and the rest", () => {
    expect([verdictRank(row(1, null, true)), verdictRank(row(2, 0.3, true)), verdictRank(row(3, 0.01, false))]).toEqual(["★ 1", "≈ 1", "3"]);
    expect(verdictRank(row(2, null, null))).toBe("2"); // one seed: no test, no tie claimed
  });
  it("writes a mean with its interval only when there is one", () => {
    expect(formatInterval(0.5, 0.012)).toBe("0.500 ± 0.012");
    expect(formatInterval(0.5, null)).toBe("0.500");
    expect(formatInterval(null, 0.1)).toBe("–");
  });
});

describe("the number fields", () => {
  it("accept values within their bounds", () => {
    expect(checkNumber(NUMBER_RULES.malicious_fraction, "0.25")).toEqual({ value: 0.25, error: null });
    expect(checkNumber(NUMBER_RULES.malicious_fraction, "0")).toEqual({ value: 0, error: null });
    expect(checkNumber(NUMBER_RULES.rounds, " 12 ")).toEqual({ value: 12, error: null });
  });
  it("refuse anything else with one line naming what was expected and what was given", () => {
    expect(checkNumber(NUMBER_RULES.malicious_fraction, "1.5").error).toBe("Expected malicious fraction in [0, 1), got 1.5");
    expect(checkNumber(NUMBER_RULES.malicious_fraction, "1").error).toBe("Expected malicious fraction in [0, 1), got 1");
    expect(checkNumber(NUMBER_RULES.rounds, "0").error).toBe("Expected rounds an integer >= 1, got 0");
    expect(checkNumber(NUMBER_RULES.clients, "2.5").error).toBe("Expected clients an integer >= 1, got 2.5");
    expect(checkNumber(NUMBER_RULES.rounds, "").error).toBe("Expected rounds an integer >= 1, got nothing");
    expect(checkNumber(NUMBER_RULES.rounds, "1e400").value).toBeNull();
  });
});

it("names a partition as a reader does", () => {
  expect([partitionLabel("0.5"), partitionLabel("inf"), partitionLabel("iid"), partitionLabel("shard")]).toEqual(["α=0.5", "α=inf", "iid", "shard"]);
});
