// @vitest-environment jsdom
// The panel rendered into a DOM with a stand-in for anywidget's model: rows stream into the
// embedded charts without re-embedding them, the table ranks, and the controls write the model.
import { describe, expect, it } from "vitest";
import panel, { type PanelModel } from "../src/index";
import type { RoundRow, RunEntry } from "../src/logic";

// written by `make widgets/test/fixtures/specs.json`; tests/test_panel.py checks it is current
import specs from "./fixtures/specs.json";

class FakeModel implements PanelModel {
  state: Record<string, unknown>;
  sent: any[] = [];
  saved: Record<string, unknown>[] = [];
  private handlers = new Map<string, ((...args: any[]) => void)[]>();
  constructor(state: Record<string, unknown>) {
    this.state = { ...state };
  }
  get(name: string) {
    return this.state[name];
  }
  set(name: string, value: unknown) {
    this.state[name] = value;
  }
  save_changes() {
    this.saved.push({ ...this.state });
  }
  send(content: unknown) {
    this.sent.push(content);
  }
  on(event: string, cb: (...args: any[]) => void) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), cb]);
  }
  off(event: string, cb: (...args: any[]) => void) {
    this.handlers.set(event, (this.handlers.get(event) ?? []).filter((x) => x !== cb));
  }
  emit(event: string, ...args: unknown[]) {
    for (const cb of this.handlers.get(event) ?? []) cb(...args);
  }
  change(name: string, value: unknown) {
    this.state[name] = value;
    this.emit(`change:${name}`);
  }
}

function rows(run: string, strategy: string, from: number, to: number, index = 0, config = index): RoundRow[] {
  const out: RoundRow[] = [];
  for (let r = from; r <= to; r++) {
    out.push({
      run, index, strategy, attack: "none", alpha: "iid", seed: 0, round: r, global_loss: 2 / r, accuracy: 0.1 * r,
      attack_success: null, malicious_share: null, malicious_weight: null, clipped: null, selected_malicious: null, config,
    });
  }
  return out;
}

function entry(run: string, accuracy: number | null, status: string): RunEntry {
  return {
    index: 0, run, strategy: run, attack: "none", alpha: "iid", setting: "iid", attack_shown: "none", seed: 0, status, rounds_done: 3, rounds_total: 5,
    accuracy, loss: accuracy === null ? null : 1 - accuracy, accuracy_change: null, loss_change: null,
    attack_success: null, malicious_share: null, malicious_weight: null, defence_note: null, dp_epsilon: null, server_dp_epsilon: null,
    error: status === "failed" ? "ValueError: boom" : null,
  };
}

const until = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

function lineVertices(el: HTMLElement): number {
  return Array.from(el.querySelectorAll('[data-chart="progress"] .mark-line path'))
    .map((p) => ((p.getAttribute("d") ?? "").match(/[ML]/g) ?? []).length)
    .reduce((a, b) => a + b, 0);
}

function mount() {
  const model = new FakeModel({
    specs,
    runs: [entry("FedAvg", 0.7, "running"), entry("Krum", 0.9, "finished"), entry("Bulyan", null, "failed")],
    counts: { queued: 0, running: 1, finished: 1, failed: 1, rounds: 0, rounds_per_s: null },
    running: true,
    message: "",
    label_rows: [{ client: 0, class: 0, count: 5 }, { client: 1, class: 1, count: 7 }],
    label_note: "blobs · 2 clients · iid",
    strategy_options: ["FedAvg", "Krum", "Bulyan"],
    attack_options: ["none", "sign_flip"],
    option_help: { sign_flip: "Each malicious client sends -scale times its own update." },
    alpha: null,
    strategies: ["FedAvg"],
    attacks: ["none"],
    malicious_fraction: 0.2,
    rounds: 5,
    clients: 2,
    seeds: 1,
    device: "auto",
    device_options: ["auto", "cpu", "cuda:0"],
    rank_by: "accuracy",
    presets: [{ name: "ALIE vs Krum at α = 0.1", summary: "A little is enough." }],
    attack_strengths: [
      { attack: "sign_flip", param: "scale", default: 1, help: "magnitude of the flipped update" },
      { attack: "alie", param: "z", default: null, help: "deviation in standard deviations" },
    ],
  });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = panel.render({ model, el });
  return { model, el, cleanup };
}

describe("the rendered panel", () => {
  it("asks for a replay once its charts are ready, then draws streamed rows incrementally", async () => {
    const { model, el, cleanup } = mount();
    await until(() => el.querySelector(".vfl-panel")?.getAttribute("data-charts-ready") === "true");
    expect(model.sent).toEqual([{ kind: "replay", have: 0 }]);
    const svgBefore = el.querySelector('[data-chart="progress"] svg');

    model.emit("msg:custom", { kind: "rows", start: 0, rows: rows("a", "FedAvg", 1, 3) });
    await until(() => lineVertices(el) === 2 * 3);
    // a replay that overlaps adds only what is new
    model.emit("msg:custom", { kind: "rows", start: 0, rows: rows("a", "FedAvg", 1, 5) });
    await until(() => lineVertices(el) === 2 * 5);
    model.emit("msg:custom", { kind: "rows", start: 5, rows: rows("b", "Krum", 1, 2) });
    await until(() => lineVertices(el) === 2 * 7);
    expect(el.querySelector(".vfl-panel")!.getAttribute("data-rows-received")).toBe("7");
    // the same SVG element: the view was updated in place, not embedded again
    expect(el.querySelector('[data-chart="progress"] svg')).toBe(svgBefore);

    // a gap (a message lost before the view existed) asks for a replay from where it is
    model.sent = [];
    model.emit("msg:custom", { kind: "rows", start: 20, rows: rows("c", "Krum", 1, 1) });
    expect(model.sent).toEqual([{ kind: "replay", have: 7 }]);
    model.emit("msg:custom", { kind: "rows", start: 21, rows: rows("c", "Krum", 2, 2) });
    expect(model.sent.length).toBe(1); // one request until it is answered
    cleanup();
  });

  it("ranks the runs, marks the leader and shows a failed run's error", async () => {
    const { model, el, cleanup } = mount();
    const table = () => Array.from(el.querySelectorAll('[data-role="ranking"] tbody tr')) as HTMLTableRowElement[];
    expect(table().map((tr) => tr.dataset.run)).toEqual(["Krum", "FedAvg", "Bulyan"]);
    expect(table()[0].classList.contains("vfl-leader")).toBe(true);
    expect(table()[2].textContent).toContain("ValueError: boom");
    model.change("runs", [entry("FedAvg", 0.95, "finished"), entry("Krum", 0.9, "finished")]);
    expect(table().map((tr) => tr.dataset.run)).toEqual(["FedAvg", "Krum"]);
    model.change("rank_by", "loss");
    expect(table()[0].cells[0].textContent).toBe("★ 1");
    expect(el.querySelector('[data-role="status"]')!.textContent).toBe("0 queued · 1 running · 1 done · 1 failed · 0 rounds");
    cleanup();
  });

  it("writes the controls to the model and sends Run and Stop", () => {
    const { model, el, cleanup } = mount();
    const slider = el.querySelector('input[data-control="alpha"]') as HTMLInputElement;
    expect(slider.value).toBe("81"); // iid
    slider.value = "20";
    slider.dispatchEvent(new Event("input"));
    expect(model.state.alpha).toBe(0.1);
    expect(el.querySelector('[data-role="alpha"]')!.textContent).toBe("α = 0.1");
    (el.querySelector('[data-control="iid"]') as HTMLButtonElement).click();
    expect(model.state.alpha).toBeNull();

    const flip = el.querySelector('[data-control="attacks"] input[value="sign_flip"]')!.closest("label")!;
    expect(flip.title).toBe("Each malicious client sends -scale times its own update."); // what the choice is
    const krum = el.querySelector('[data-control="strategies"] input[value="Krum"]') as HTMLInputElement;
    krum.click();
    expect(model.state.strategies).toEqual(["FedAvg", "Krum"]);
    const rounds = el.querySelector('input[data-control="rounds"]') as HTMLInputElement;
    rounds.value = "12";
    rounds.dispatchEvent(new Event("change"));
    expect(model.state.rounds).toBe(12);

    const device = el.querySelector('select[data-control="device"]') as HTMLSelectElement;
    expect(Array.from(device.options).map((o) => o.value)).toEqual(["auto", "cpu", "cuda:0"]); // what the machine has
    expect(device.value).toBe("auto");
    device.value = "cuda:0";
    device.dispatchEvent(new Event("change"));
    expect(model.state.device).toBe("cuda:0");
    model.change("device", "cpu"); // Python's Reset or a preset moves the choice
    expect(device.value).toBe("cpu");

    (el.querySelector('[data-action="run"]') as HTMLButtonElement).click();
    (el.querySelector('[data-action="stop"]') as HTMLButtonElement).click();
    // Run carries the controls as shown (the state sync may still be on its way)
    expect(model.sent.filter((m) => m.kind !== "replay")).toEqual([
      {
        kind: "run",
        controls: { alpha: null, strategies: ["FedAvg", "Krum"], attacks: ["none"], malicious_fraction: 0.2, rounds: 12, clients: 2, seeds: 1, device: "cpu" },
      },
      { kind: "stop" },
    ]);

    // Python moving α moves the slider
    model.change("alpha", 10);
    expect(slider.value).toBe("60");
    cleanup();
  });

  it("draws the heatmap from Python's cells, one panel per setting, with the interval under the mean", async () => {
    const { model, el, cleanup } = mount();
    await until(() => el.querySelector(".vfl-panel")?.getAttribute("data-charts-ready") === "true");
    model.change("cells", [
      { strategy: "FedAvg", attack: "none", setting: "α=0.5", accuracy: 0.9, ci95: 0.02, runs: 3 },
      { strategy: "Krum", attack: "sign_flip", setting: "α=0.5", accuracy: 0.4, ci95: null, runs: 1 },
      { strategy: "Krum", attack: "sign_flip", setting: "α=inf", accuracy: 0.7, ci95: 0.1, runs: 2 },
    ]);
    const heatmap = () => el.querySelector('[data-chart="heatmap"]')!;
    await until(() => heatmap().querySelectorAll(".mark-rect.role-mark path").length === 3);
    const texts = Array.from(heatmap().querySelectorAll(".mark-text text")).map((t) => t.textContent);
    expect(texts).toEqual(expect.arrayContaining(["0.90", "±0.02", "0.40", "0.70", "±0.10"]));
    expect(texts.filter((t) => t?.startsWith("±")).length).toBe(2); // a one-run cell has no interval
    expect(heatmap().textContent).toContain("α=inf");
    cleanup();
  });

  it("leads with the verdict: ties with the best marked, the interval shown, the notices listed", () => {
    const { model, el, cleanup } = mount();
    expect(el.querySelector('[data-role="verdict-box"]')!.textContent).toContain("appears when attacked runs have finished");
    const row = (strategy: string, rank: number, p: number | null, tied: boolean | null) => ({
      alpha: "0.5", rank, strategy, seeds: [0, 1, 2], attacks: ["alie", "sign_flip"],
      clean_accuracy: 0.9, clean_accuracy_ci95: 0.01, worst_case_accuracy: 0.8 - rank / 10, worst_case_accuracy_ci95: 0.05,
      worst_attack: "alie", mean_attacked_accuracy: 0.85, mean_attacked_accuracy_ci95: null, p_vs_best: p, tied_with_best: tied,
      versus_best: rank === 1 ? "best" : `${tied ? "tied" : "worse"} (p = ${p?.toFixed(3)})`, // Python's words
    });
    model.change("verdict", {
      table: [row("CenteredClipping", 1, null, true), row("TrimmedMean", 2, 0.41, true), row("FedAvg", 3, 0.002, false)],
      single_seed: false,
      notices: ["Defence never acted: in 'Krum | alie' Krum neither clipped <b>x</b>"],
    });
    const rows = Array.from(el.querySelectorAll('[data-role="verdict"] tbody tr')) as HTMLTableRowElement[];
    expect(rows.map((r) => r.cells[1].textContent)).toEqual(["★ 1", "≈ 1", "3"]);
    expect(rows[1].classList.contains("vfl-tied")).toBe(true);
    expect(rows[1].cells[7].textContent).toBe("tied (p = 0.410)");
    expect(rows[2].cells[7].textContent).toBe("worse (p = 0.002)");
    expect(rows[0].cells[4].textContent).toBe("0.700 ± 0.050");
    expect(rows[0].cells[6].textContent).toBe("0.850"); // no interval, none shown
    const notice = el.querySelector(".vfl-notice")!;
    expect(notice.textContent).toContain("<b>x</b>"); // user text stays text
    expect(notice.querySelector("b")).toBeNull();
    cleanup();
  });

  it("shows what the defence let through, and says when it never acted", () => {
    const { model, el, cleanup } = mount();
    model.change("runs", [
      { ...entry("Krum", 0.5, "finished"), attack: "alie", malicious_share: 0.2, malicious_weight: 0.2, defence_note: "never acted" },
      { ...entry("FedMedian", 0.8, "finished"), attack: "alie", malicious_share: 0.03, malicious_weight: 0.2 },
    ]);
    const cells = Array.from(el.querySelectorAll('[data-role="ranking"] tbody td.vfl-defence')).map((c) => c.textContent);
    expect(cells).toEqual(["0.03 of 0.20", "0.20 of 0.20never acted"]);
    const table = el.querySelector('[data-role="ranking"]') as HTMLTableElement;
    expect(table.classList.contains("vfl-with-success")).toBe(false); // no targeted attack: no column
    model.change("runs", [{ ...entry("FedAvg", 0.96, "finished"), attack: "backdoor", attack_success: 0.97 }]);
    expect(table.classList.contains("vfl-with-success")).toBe(true);
    expect(el.querySelector('[data-role="ranking"] tbody td.vfl-success')!.textContent).toBe("0.97");
    cleanup();
  });

  it("turns the α slider off, saying why, when the sweep's partition has no α", () => {
    const { model, el, cleanup } = mount();
    const slider = el.querySelector('[data-control="alpha"]') as HTMLInputElement;
    const note = el.querySelector('[data-role="alpha-note"]') as HTMLElement;
    expect(slider.disabled).toBe(false);
    expect(note.hidden).toBe(true);
    model.change("alpha_note", "new runs keep the sweep's natural by writer partition, which has no Dirichlet α");
    expect(slider.disabled).toBe(true);
    expect((el.querySelector('[data-control="iid"]') as HTMLButtonElement).disabled).toBe(true);
    expect(note.hidden).toBe(false);
    expect(note.textContent).toContain("natural by writer");
    expect((el.querySelector('[data-role="alpha"]') as HTMLElement).hidden).toBe(true);
    cleanup();
  });

  it("shows the privacy spent only when a run has differential privacy", () => {
    const { model, el, cleanup } = mount();
    model.change("runs", [entry("FedAvg", 0.9, "finished")]);
    const table = el.querySelector('[data-role="ranking"]') as HTMLTableElement;
    expect(table.classList.contains("vfl-with-epsilon")).toBe(false);
    model.change("runs", [
      { ...entry("FedAvg [DP-SGD σ=1 C=1]", 0.8, "finished"), dp_epsilon: 3.456 },
      { ...entry("FedAvg [server DP z=1 C=1]", 0.7, "finished"), server_dp_epsilon: 12.3 },
      { ...entry("Krum [server DP z=1 C=1]", 0.6, "finished") },
    ]);
    expect(table.classList.contains("vfl-with-epsilon")).toBe(true);
    const cells = Array.from(el.querySelectorAll('[data-role="ranking"] tbody td.vfl-epsilon')).map((c) => c.textContent);
    expect(cells).toEqual(["3.46 (DP-SGD)", "12.30 (server)", ""]);
    expect(el.querySelectorAll('[data-role="ranking"] thead th.vfl-epsilon').length).toBe(1);
    cleanup();
  });

  it("keeps keys pressed in its controls from the notebook's shortcuts, and no others", () => {
    const { el, cleanup } = mount();
    const reached: string[] = [];
    const notebook = (e: Event) => reached.push(`${(e as KeyboardEvent).key}@${(e.target as HTMLElement).tagName}`);
    document.addEventListener("keydown", notebook, true); // as Notebook 7 listens: capture phase
    const slider = el.querySelector('input[data-control="alpha"]') as HTMLInputElement;
    slider.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    (el.querySelector('select[data-control="rank_by"]') as HTMLSelectElement).dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
    (el.querySelector('[data-role="status"]') as HTMLElement).dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    document.removeEventListener("keydown", notebook, true);
    expect(reached).toEqual(["ArrowLeft@DIV"]); // only the key pressed outside a control
    cleanup();
    // a closed view lets every key through again
    const after: string[] = [];
    const listen = (e: Event) => after.push((e as KeyboardEvent).key);
    document.addEventListener("keydown", listen, true);
    slider.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    document.removeEventListener("keydown", listen, true);
    expect(after).toEqual(["ArrowLeft"]); // its window listener went with the view
  });

  it("refuses an invalid number where it was typed and keeps Run disabled until it is fixed", () => {
    const { model, el, cleanup } = mount();
    const fraction = el.querySelector('input[data-control="malicious_fraction"]') as HTMLInputElement;
    const run = el.querySelector('[data-action="run"]') as HTMLButtonElement;
    const error = el.querySelector('[data-role="input-error"]') as HTMLElement;
    expect(run.disabled).toBe(false);
    expect(error.hidden).toBe(true);
    fraction.value = "1.5";
    fraction.dispatchEvent(new Event("change"));
    expect(model.state.malicious_fraction).toBe(0.2); // not sent
    expect(fraction.classList.contains("vfl-invalid")).toBe(true);
    expect(error.textContent).toBe("Expected malicious fraction in [0, 1), got 1.5");
    expect(run.disabled).toBe(true);
    const rounds = el.querySelector('input[data-control="rounds"]') as HTMLInputElement;
    rounds.value = "0";
    rounds.dispatchEvent(new Event("input"));
    expect(error.textContent).toBe("Expected malicious fraction in [0, 1), got 1.5; Expected rounds an integer >= 1, got 0");
    fraction.value = "0.3";
    fraction.dispatchEvent(new Event("change"));
    rounds.value = "7";
    rounds.dispatchEvent(new Event("change"));
    expect([model.state.malicious_fraction, model.state.rounds, run.disabled, error.hidden]).toEqual([0.3, 7, false, true]);
    cleanup();
  });

  it("says a run diverged instead of showing its missing loss as a dash", () => {
    const { model, el, cleanup } = mount();
    model.change("runs", [entry("FedAvg", 0.1, "finished"), { ...entry("Krum", 0.5, "finished"), loss: 0.5 }].map((e, i) => (i === 0 ? { ...e, loss: null } : e)));
    const loss = Array.from(el.querySelectorAll('[data-role="ranking"] tbody tr')).map((tr) => (tr as HTMLTableRowElement).cells[5].textContent);
    expect(loss).toEqual(["0.5000", "diverged"]);
    cleanup();
  });

  it("keeps every row and the runs shown when a chart is embedded again with new colours", async () => {
    const { model, el, cleanup } = mount();
    await until(() => el.querySelector(".vfl-panel")?.getAttribute("data-charts-ready") === "true");
    model.emit("msg:custom", { kind: "rows", start: 0, rows: [...rows("a", "FedAvg", 1, 3, 0), ...rows("b", "Krum", 1, 2, 1)] });
    await until(() => lineVertices(el) === 2 * 5);
    const svgBefore = el.querySelector('[data-chart="progress"] svg');
    const recoloured = structuredClone(specs) as any;
    for (const layer of recoloured.progress.hconcat[0].layer.filter((l: any) => l.encoding?.color)) {
      layer.encoding.color.scale = { domain: ["Krum", "FedAvg"], range: ["#111111", "#222222"] };
    }
    model.change("specs", recoloured);
    await until(() => el.querySelector('[data-chart="progress"] svg') !== svgBefore);
    await until(() => lineVertices(el) === 2 * 5);
    const strokes = Array.from(el.querySelectorAll('[data-chart="progress"] .mark-line path')).map((p) => p.getAttribute("stroke"));
    expect(strokes).toEqual(expect.arrayContaining(["#111111", "#222222"]));

    // Python names the runs of one setting: the lines and the table show only those
    model.change("runs", [{ ...entry("a", 0.3, "running"), index: 0, setting: "iid" }, { ...entry("b", 0.2, "running"), index: 1, setting: "α = 0.1" }]);
    const show = el.querySelector('select[data-control="show_setting"]') as HTMLSelectElement;
    expect(Array.from(show.options).map((o) => o.textContent)).toEqual(["every setting", "iid", "α = 0.1"]);
    expect(el.querySelector('[data-role="show-hint"]')!.textContent).toContain("mix 2 settings");
    show.value = "α = 0.1";
    show.dispatchEvent(new Event("change"));
    expect(model.state.show_setting).toBe("α = 0.1");
    model.change("shown_runs", [1]);
    await until(() => lineVertices(el) === 2 * 2);
    expect(Array.from(el.querySelectorAll('[data-role="ranking"] tbody tr')).map((tr) => (tr as HTMLElement).dataset.run)).toEqual(["b"]);
    // a chart embedded again keeps the filter
    model.change("specs", specs);
    await until(() => lineVertices(el) === 2 * 2 && Array.from(el.querySelectorAll('[data-chart="progress"] .mark-line path')).every((p) => p.getAttribute("stroke") !== "#111111"));
    model.change("shown_runs", null);
    await until(() => lineVertices(el) === 2 * 5);
    cleanup();
  });

  it("shades the 95 % interval over the seeds of one configuration", async () => {
    const { model, el, cleanup } = mount();
    await until(() => el.querySelector(".vfl-panel")?.getAttribute("data-charts-ready") === "true");
    const bands = () => el.querySelectorAll('[data-chart="progress"] .mark-area path');
    // three seeds of configuration 7 (accuracy 0.1 r, 0.1 r + 0.02, 0.1 r + 0.04), one of configuration 8
    const seeds = [0, 1, 2].flatMap((seed) => rows(`s${seed}`, "FedAvg", 1, 4, seed, 7).map((r) => ({ ...r, seed, accuracy: r.accuracy! + 0.02 * seed })));
    model.emit("msg:custom", { kind: "rows", start: 0, rows: [...seeds, ...rows("x", "Krum", 1, 4, 3, 8)] });
    await until(() => lineVertices(el) === 2 * 16);
    await until(() => bands().length === 1); // one band: the lone run has none
    // round 1: 0.10, 0.12, 0.14: mean 0.12, sd 0.02, ± t(0.975, 2) · 0.02 / √3 = 0.049683 (the
    // verdict's interval); t is tabled to 4 decimals, so the edge is within 0.00005 · 0.02 / √3 = 6e-7
    const tip = (el.querySelector('[data-chart="progress"] .mark-area path') as SVGElement).getAttribute("aria-label") ?? "";
    expect(tip).toContain("seeds: 3");
    expect(tip).toContain("mean over seeds: 0.120");
    const low = Number(/test accuracy: ([0-9.]+)/.exec(tip)![1]);
    expect(Math.abs(low - (0.12 - 4.302652729911275 * 0.02 / Math.sqrt(3)))).toBeLessThan(1e-6);
    cleanup();
  });

  it("sends a chosen scenario, an attack at a chosen strength and Reset to Python", () => {
    const { model, el, cleanup } = mount();
    const preset = el.querySelector('select[data-control="preset"]') as HTMLSelectElement;
    expect(Array.from(preset.options).map((o) => [o.value, o.title])).toEqual([["", ""], ["ALIE vs Krum at α = 0.1", "A little is enough."]]);
    preset.value = "ALIE vs Krum at α = 0.1";
    preset.dispatchEvent(new Event("change"));
    expect(preset.value).toBe(""); // ready to choose again

    const attack = el.querySelector('select[data-control="strength-attack"]') as HTMLSelectElement;
    const value = el.querySelector('input[data-control="strength-value"]') as HTMLInputElement;
    const param = () => el.querySelector('[data-role="strength-param"]')!.textContent;
    expect([attack.value, param(), value.value]).toEqual(["sign_flip", "scale =", "1"]);
    value.value = "4";
    (el.querySelector('[data-action="add-strength"]') as HTMLButtonElement).click();
    attack.value = "alie";
    attack.dispatchEvent(new Event("change"));
    expect([param(), value.value, value.placeholder]).toEqual(["z =", "", "derived"]); // ALIE's z comes from n and f
    (el.querySelector('[data-action="add-strength"]') as HTMLButtonElement).click();
    (el.querySelector('[data-action="reset"]') as HTMLButtonElement).click();
    expect(model.sent.filter((m) => m.kind !== "replay")).toEqual([
      { kind: "preset", name: "ALIE vs Krum at α = 0.1" },
      { kind: "strength", attack: "sign_flip", value: 4 },
      { kind: "strength", attack: "alie", value: null },
      { kind: "reset" },
    ]);
    cleanup();
  });

  it("draws the chosen run per client and sends another choice to Python", async () => {
    const { model, el, cleanup } = mount();
    await until(() => el.querySelector(".vfl-panel")?.getAttribute("data-charts-ready") === "true");
    const row = (round: number, client: number, role: string, share: number) => ({ round, client, role, share, norm: role === "malicious" ? 40 : 2 });
    model.change("client_rows", [row(1, 0, "honest", 0.5), row(1, 1, "honest", 0.5), row(1, 2, "malicious", 0), row(2, 0, "honest", 1), row(2, 1, "honest", 0), row(2, 2, "malicious", 0)]);
    model.change("client_note", "Krum | alie | α=iid | seed=0");
    const chart = () => el.querySelector('[data-chart="clients"]')!;
    await until(() => chart().querySelectorAll(".mark-rect.role-mark path").length === 6);
    expect(chart().textContent).toContain("2 (malicious)");
    expect(el.querySelector('[data-role="client-note"]')!.textContent).toBe("Krum | alie | α=iid | seed=0");
    const select = el.querySelector('select[data-control="client_run"]') as HTMLSelectElement;
    expect(Array.from(select.options).map((o) => o.value)).toEqual(["", "0", "0", "0"]); // every run (all index 0 here)
    select.value = "0";
    select.dispatchEvent(new Event("change"));
    expect(model.state.client_run).toBe(0);
    cleanup();
  });
});
