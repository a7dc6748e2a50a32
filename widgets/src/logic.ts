// Pure logic of the panel, kept apart from the DOM and Vega so vitest can check it directly.

/** One round of one run, as Python sends it (a subset of `Sweep.results`' columns). */
export interface RoundRow {
  run: string;
  index: number;
  strategy: string;
  attack: string;
  alpha: string;
  seed: number;
  round: number;
  global_loss: number | null;
  accuracy: number | null;
  /** a targeted attack's success rate (backdoor, targeted label flipping); null otherwise */
  attack_success: number | null;
  malicious_share: number | null;
  malicious_weight: number | null;
  clipped: number | null;
  selected_malicious: number | null;
  /** the panel's number for the run's configuration: its seeds share it (one band) */
  config: number;
}

/** One run in the ranking table (built by Python: velocity/panel/state.py). */
export interface RunEntry {
  index: number;
  run: string;
  strategy: string;
  attack: string;
  alpha: string;
  /** the partition, with clients and rounds when the sweep varies them ("α=0.1 · 20 clients") */
  setting: string;
  /** the attack, with the number of malicious clients when the sweep varies their share ("alie · f=3") */
  attack_shown: string;
  seed: number;
  status: string;
  rounds_done: number;
  rounds_total: number;
  accuracy: number | null;
  loss: number | null;
  accuracy_change: number | null;
  loss_change: number | null;
  /** a targeted attack's success rate (backdoor, targeted label flipping): final, or latest while running */
  attack_success: number | null;
  /** the malicious updates' share of the aggregate (mean over rounds once finished) */
  malicious_share: number | null;
  /** their share of the weights: what malicious_share is when the rule does nothing */
  malicious_weight: number | null;
  /** "never acted" when a defending rule neither clipped, excluded nor down-weighted them */
  defence_note: string | null;
  /** DP-SGD's privacy spent (the largest client's ε, per example): final, or latest while running */
  dp_epsilon: number | null;
  /** server DP's (per client, for the mean); null for another rule, whose noise is the mean's */
  server_dp_epsilon: number | null;
  error: string | null;
}

/** One strategy at one α in the verdict (built by Python: velocity/sweep/verdict.py). */
export interface VerdictRow {
  alpha: string;
  rank: number;
  strategy: string;
  seeds: number[];
  attacks: string[];
  clean_accuracy: number | null;
  clean_accuracy_ci95: number | null;
  worst_case_accuracy: number | null;
  worst_case_accuracy_ci95: number | null;
  worst_attack: string | null;
  mean_attacked_accuracy: number | null;
  mean_attacked_accuracy_ci95: number | null;
  p_vs_best: number | null;
  /** null: one seed, no test */
  tied_with_best: boolean | null;
  /** the row against its α's best in words (velocity.sweep.verdict.versus_best) */
  versus_best: string;
}

export interface Verdict {
  table?: VerdictRow[];
  single_seed?: boolean;
  notices?: string[];
}

export type RankBy = "accuracy" | "loss";

/** A scenario the controls can be set to (velocity/panel/presets.py). */
export interface Preset {
  name: string;
  summary: string;
}

/** An attack whose strength is one number (velocity.panel.widget.attack_strengths). */
export interface AttackStrength {
  attack: string;
  param: string;
  /** null: derived from the federation (ALIE's z) */
  default: number | null;
  help: string;
}

// ---------------------------------------------------------------- the α slider
// The slider is log-scaled over α ∈ [0.01, 100] with 20 steps per decade; one more stop past
// the end means iid (α = ∞). Values are rounded to two significant digits (1, 1.1, 1.3, …, 8.9:
// every stop a distinct value) so 0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10 and 100
// are exact stops.
export const ALPHA_MIN_LOG10 = -2;
export const ALPHA_MAX_LOG10 = 2;
export const STEPS_PER_DECADE = 20;
export const SLIDER_MAX = (ALPHA_MAX_LOG10 - ALPHA_MIN_LOG10) * STEPS_PER_DECADE + 1;
export const IID_POSITION = SLIDER_MAX;

export function roundSignificant(x: number, digits = 2): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  const factor = Math.pow(10, digits - 1 - magnitude);
  return Math.round(x * factor) / factor;
}

/** Slider position → α, or null for iid. */
export function sliderToAlpha(position: number): number | null {
  if (!Number.isFinite(position)) throw new Error(`Expected a finite slider position, got ${position}`);
  const p = Math.round(Math.min(Math.max(position, 0), SLIDER_MAX));
  if (p >= IID_POSITION) return null;
  return roundSignificant(Math.pow(10, ALPHA_MIN_LOG10 + p / STEPS_PER_DECADE));
}

/** α (null or ∞ = iid) → the nearest slider position. */
export function alphaToSlider(alpha: number | null): number {
  if (alpha === null || alpha === Infinity) return IID_POSITION;
  if (!(alpha > 0)) throw new Error(`Expected alpha > 0 or null (iid), got ${alpha}`);
  const p = Math.round((Math.log10(alpha) - ALPHA_MIN_LOG10) * STEPS_PER_DECADE);
  return Math.min(Math.max(p, 0), IID_POSITION - 1);
}

export function formatAlpha(alpha: number | null): string {
  return alpha === null || alpha === Infinity ? "iid (α = ∞)" : `α = ${alpha}`;
}

// ---------------------------------------------------------------- number fields
/** What a number field of the controls accepts (the bounds Python's traitlets enforce). */
export interface NumberRule {
  label: string;
  min: number;
  /** the largest value, itself excluded when `maxExclusive` */
  max?: number;
  maxExclusive?: boolean;
  integer?: boolean;
}

export const NUMBER_RULES = {
  malicious_fraction: { label: "malicious fraction", min: 0, max: 1, maxExclusive: true },
  rounds: { label: "rounds", min: 1, integer: true },
  clients: { label: "clients", min: 1, integer: true },
  seeds: { label: "seeds", min: 1, integer: true },
} satisfies Record<string, NumberRule>;

/**
 * A number field's text checked against its rule: the value, or one line that names what was
 * expected and what was given (never silently replaced by the last valid value).
 */
export function checkNumber(rule: NumberRule, text: string): { value: number; error: null } | { value: null; error: string } {
  const given = text.trim();
  const v = given === "" ? NaN : Number(given);
  const what = rule.integer ? `an integer >= ${rule.min}` : rule.max === undefined ? `>= ${rule.min}` : `in [${rule.min}, ${rule.max}${rule.maxExclusive ? ")" : "]"}`;
  const bad = (): { value: null; error: string } => ({ value: null, error: `Expected ${rule.label} ${what}, got ${given === "" ? "nothing" : given}` });
  if (!Number.isFinite(v) || v < rule.min || (rule.integer && !Number.isInteger(v))) return bad();
  if (rule.max !== undefined && (rule.maxExclusive ? v >= rule.max : v > rule.max)) return bad();
  return { value: v, error: null };
}

// ---------------------------------------------------------------- streaming rows
/**
 * Which rows of a `{start, rows}` message are new to a view that already holds `have` rows.
 * Rows are numbered by Python in arrival order, so a message may overlap what the view has
 * (a replay) or leave a gap (the view missed a message before it rendered): then `gapFrom`
 * says where the view must ask Python to replay from.
 */
export function newRows(have: number, start: number, rows: RoundRow[]): { fresh: RoundRow[]; gapFrom: number | null } {
  if (start > have) return { fresh: [], gapFrom: have };
  const skip = have - start;
  return { fresh: skip >= rows.length ? [] : rows.slice(skip), gapFrom: null };
}

/**
 * Collects rows and hands them on at most once per `intervalMs`, so a fast sweep costs the
 * browser a few chart updates per second however many rounds arrive.
 */
export class RowBatcher {
  private pending: RoundRow[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly flush: (rows: RoundRow[]) => void,
    private readonly intervalMs = 200,
  ) {}

  push(rows: RoundRow[]): void {
    if (rows.length === 0) return;
    this.pending.push(...rows);
    if (this.timer === null) this.timer = setTimeout(() => this.drain(), this.intervalMs);
  }

  drain(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const rows = this.pending;
    this.pending = [];
    this.flush(rows);
  }

  get size(): number {
    return this.pending.length;
  }
}

// ---------------------------------------------------------------- ranking
function metric(entry: RunEntry, by: RankBy): number | null {
  const v = by === "accuracy" ? entry.accuracy : entry.loss;
  return v === null || !Number.isFinite(v) ? null : v;
}

/**
 * Runs in ranking order. Only finished runs are ranked: best accuracy first (or lowest loss),
 * ties broken by the other metric; runs equal in both share a rank (1, 1, 3) and, at the top,
 * the star. Runs still going (or cancelled) follow, unranked, in the same order; then runs with
 * no value yet; failed runs last. Comparing a finished run with one at round 4 would mislead.
 */
export function rankRuns(runs: RunEntry[], by: RankBy): { entry: RunEntry; rank: number | null; leader: boolean }[] {
  const group = (e: RunEntry): number => {
    if (e.status === "failed") return 3;
    if (metric(e, by) === null) return 2;
    return e.status === "finished" ? 0 : 1;
  };
  const sign = by === "accuracy" ? -1 : 1;
  const other: RankBy = by === "accuracy" ? "loss" : "accuracy";
  const compareValues = (a: RunEntry, b: RunEntry): number => {
    const ma = metric(a, by);
    const mb = metric(b, by);
    if (ma !== null && mb !== null && ma !== mb) return sign * (ma - mb);
    const oa = metric(a, other);
    const ob = metric(b, other);
    if ((oa === null) !== (ob === null)) return oa === null ? 1 : -1;
    if (oa !== null && ob !== null && oa !== ob) return -sign * (oa - ob);
    return 0;
  };
  const sorted = [...runs].sort((a, b) => group(a) - group(b) || compareValues(a, b) || (a.run < b.run ? -1 : a.run > b.run ? 1 : 0));
  let rank = 0;
  let previous: RunEntry | null = null;
  return sorted.map((entry, i) => {
    if (group(entry) !== 0) return { entry, rank: null, leader: false };
    if (previous === null || compareValues(previous, entry) !== 0) rank = i + 1; // competition ranking: 1, 1, 3
    previous = entry;
    return { entry, rank, leader: rank === 1 };
  });
}

// ---------------------------------------------------------------- verdict
/**
 * The rank column of the verdict: "★ 1" for the best at its α, "≈ 1" for a strategy the paired
 * test cannot tell from the best (a statistical tie), its rank otherwise.
 */
export function verdictRank(row: VerdictRow): string {
  if (row.rank === 1) return "★ 1";
  if (row.tied_with_best === true) return "≈ 1";
  return String(row.rank);
}

/** What the verdict row says against the best: "best", "tied (p = 0.41)", "p = 0.003", "no test". */
/** A run's α label as a reader names it: "α=0.5", "α=inf", or the partition ("iid", "shard"). */
export function partitionLabel(alpha: string): string {
  return alpha === "inf" || Number.isFinite(Number(alpha)) ? `α=${alpha}` : alpha;
}

/** A mean with its 95 % interval's half-width, when it has one. */
export function formatInterval(mean: number | null | undefined, ci: number | null | undefined, digits = 3): string {
  const text = formatNumber(mean, digits);
  return ci === null || ci === undefined || Number.isNaN(ci) || text === "–" ? text : `${text} ± ${formatNumber(ci, digits)}`;
}

// ---------------------------------------------------------------- formatting
export function formatNumber(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(digits);
}

/** A run with an accuracy but no loss: its loss is not finite (NaN or ∞ travel as null). */
export function diverged(entry: RunEntry): boolean {
  return entry.loss === null && entry.accuracy !== null;
}

export function formatChange(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  const text = formatNumber(Math.abs(v), digits);
  return v > 0 ? `+${text}` : v < 0 ? `−${text}` : `±${text}`;
}

export interface Counts {
  queued?: number;
  running?: number;
  finished?: number;
  failed?: number;
  cancelled?: number;
  rounds?: number;
  rounds_per_s?: number | null;
}

export function statusLine(c: Counts): string {
  const parts = [
    `${c.queued ?? 0} queued`,
    `${c.running ?? 0} running`,
    `${c.finished ?? 0} done`,
    `${c.failed ?? 0} failed`,
  ];
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  parts.push(`${c.rounds ?? 0} rounds`);
  if (c.rounds_per_s !== null && c.rounds_per_s !== undefined) parts.push(`${c.rounds_per_s.toFixed(1)} rounds/s`);
  return parts.join(" · ");
}

// ---------------------------------------------------------------- settings
/** The settings the run table names, in the order their first run appears. */
export function settingNames(runs: RunEntry[]): string[] {
  return [...new Set(runs.map((entry) => entry.setting))];
}

/** The runs with these indices (null: every run). */
export function shownEntries(runs: RunEntry[], shown: number[] | null): RunEntry[] {
  if (shown === null) return runs;
  const keep = new Set(shown);
  return runs.filter((entry) => keep.has(entry.index));
}
