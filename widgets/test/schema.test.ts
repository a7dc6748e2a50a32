// The panel's RoundRow must have exactly the fields Python sends. velocity/rounds.py writes the
// fixture (`make widgets/test/fixtures/round_row.json`; tests/test_panel.py checks it is current),
// so a column added to or removed from the panel's rows fails the type check (`npm run
// typecheck`) here until RoundRow follows.
import { expect, it } from "vitest";
import type { RoundRow } from "../src/logic";
import fixture from "./fixtures/round_row.json";

type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const sameFields: Exactly<keyof RoundRow, keyof typeof fixture.example> = true;
const sent: RoundRow = fixture.example; // every value fits its field
const diverged: RoundRow = fixture.example_diverged; // float metrics may be null

it("RoundRow has exactly the fields the fixture lists", () => {
  expect(sameFields).toBe(true);
  expect(Object.keys(sent).sort()).toEqual(Object.keys(fixture.types).sort());
  expect(Object.keys(diverged).sort()).toEqual(Object.keys(fixture.types).sort());
});
