import { Cron } from 'croner';
import { describe, expect, it } from 'vitest';
import { WeftError } from './errors.js';
import {
  instantOfWallTime,
  latestSlots,
  parseCron,
  slotKey,
  slotsBetween,
  wallTimeOf,
} from './cron.js';

const slots = (cron: string, timezone: string, from: string, to: string): string[] =>
  slotsBetween(parseCron({ cron, timezone }), new Date(from), new Date(to), 1000).map((d) =>
    d.toISOString(),
  );

describe('cron slots', () => {
  it('enumerates slots in UTC and in a zone without DST changes', () => {
    expect(slots('*/15 * * * *', 'UTC', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z')).toEqual([
      '2026-01-01T00:15:00.000Z',
      '2026-01-01T00:30:00.000Z',
      '2026-01-01T00:45:00.000Z',
      '2026-01-01T01:00:00.000Z',
    ]);
    // 09:00 JST is 00:00 UTC; the range is (from, to]
    expect(
      slots('0 9 * * *', 'Asia/Tokyo', '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z'),
    ).toEqual(['2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z']);
  });

  it('next is strictly after the given instant', () => {
    const s = parseCron({ cron: '0 * * * *', timezone: 'UTC' });
    expect(s.next(new Date('2026-01-01T05:00:00Z'))?.toISOString()).toBe(
      '2026-01-01T06:00:00.000Z',
    );
  });

  it('an expression that never matches has no next slot', () => {
    expect(parseCron({ cron: '0 0 30 2 *', timezone: 'UTC' }).next(new Date(0))).toBeNull();
  });

  it('names the slot in the idempotency key', () => {
    expect(slotKey('sch_1', new Date('2026-03-29T01:00:00Z'))).toBe(
      'schedule:sch_1:2026-03-29T01:00:00.000Z',
    );
  });

  describe('DST rule: skipped hour fires once at the next valid instant', () => {
    it('Europe/London spring forward (01:00 GMT → 02:00 BST on 2026-03-29)', () => {
      expect(
        slots('30 1 * * *', 'Europe/London', '2026-03-28T00:00:00Z', '2026-03-31T00:00:00Z'),
      ).toEqual([
        '2026-03-28T01:30:00.000Z', // 01:30 GMT
        '2026-03-29T01:00:00.000Z', // 01:30 does not exist: 02:00 BST, the transition
        '2026-03-30T00:30:00.000Z', // 01:30 BST
      ]);
      // every match inside the gap collapses into the one transition slot
      expect(
        slots('*/20 * * * *', 'Europe/London', '2026-03-29T00:30:00Z', '2026-03-29T01:30:00Z'),
      ).toEqual([
        '2026-03-29T00:40:00.000Z',
        '2026-03-29T01:00:00.000Z',
        '2026-03-29T01:20:00.000Z',
      ]);
    });

    it('America/New_York spring forward (02:00 EST → 03:00 EDT on 2026-03-08)', () => {
      expect(
        slots('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z', '2026-03-10T00:00:00Z'),
      ).toEqual([
        '2026-03-07T07:30:00.000Z', // 02:30 EST
        '2026-03-08T07:00:00.000Z', // 02:30 does not exist: 03:00 EDT
        '2026-03-09T06:30:00.000Z', // 02:30 EDT
      ]);
    });
  });

  describe('DST rule: repeated hour fires once, on its first occurrence', () => {
    it('Europe/London fall back (02:00 BST → 01:00 GMT on 2026-10-25)', () => {
      expect(
        slots('30 1 * * *', 'Europe/London', '2026-10-24T00:00:00Z', '2026-10-27T00:00:00Z'),
      ).toEqual([
        '2026-10-24T00:30:00.000Z', // 01:30 BST
        '2026-10-25T00:30:00.000Z', // 01:30 BST, the first of the two
        '2026-10-26T01:30:00.000Z', // 01:30 GMT
      ]);
      // the second pass through 01:xx fires nothing
      expect(
        slots('*/20 * * * *', 'Europe/London', '2026-10-24T23:50:00Z', '2026-10-25T02:10:00Z'),
      ).toEqual([
        '2026-10-25T00:00:00.000Z',
        '2026-10-25T00:20:00.000Z',
        '2026-10-25T00:40:00.000Z',
        '2026-10-25T02:00:00.000Z',
      ]);
    });

    it('America/New_York fall back (02:00 EDT → 01:00 EST on 2026-11-01)', () => {
      expect(
        slots('30 1 * * *', 'America/New_York', '2026-10-31T00:00:00Z', '2026-11-03T00:00:00Z'),
      ).toEqual([
        '2026-10-31T05:30:00.000Z', // 01:30 EDT
        '2026-11-01T05:30:00.000Z', // 01:30 EDT, the first of the two
        '2026-11-02T06:30:00.000Z', // 01:30 EST
      ]);
    });

    it('maps wall-clock times by the rule', () => {
      const wall = (s: string) => Date.parse(`${s}Z`);
      const at = (s: string, tz: string) => new Date(instantOfWallTime(wall(s), tz)).toISOString();
      expect(at('2026-10-25T01:30:00', 'Europe/London')).toBe('2026-10-25T00:30:00.000Z');
      expect(at('2026-03-29T01:59:00', 'Europe/London')).toBe('2026-03-29T01:00:00.000Z');
      expect(at('2026-07-01T12:00:00', 'Europe/London')).toBe('2026-07-01T11:00:00.000Z');
    });
  });

  describe('bad input', () => {
    it('a cron that does not parse names the expression and the expected shape', () => {
      for (const cron of ['hello', '61 * * * *', '* * *', '']) {
        let error: unknown;
        try {
          parseCron({ cron, timezone: 'UTC' });
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(WeftError);
        expect((error as WeftError).code).toBe('invalid_input');
        expect((error as WeftError).message).toContain(`"${cron}"`);
        expect((error as WeftError).message).toContain('Expected 5 fields');
      }
    });

    it('a time zone that does not exist is named with examples of valid ones', () => {
      expect(() => parseCron({ cron: '* * * * *', timezone: 'Mars/Olympus' })).toThrow(
        /"Mars\/Olympus", which is not an IANA time zone.*Europe\/London/,
      );
    });
  });

  describe('cost per slot (a per-second schedule froze the worker: ~0.5 s per next())', () => {
    it('next and latest take well under 50 ms per slot, in any zone, around DST changes', () => {
      const points = [
        ['* * * * * *', 'UTC', '2026-06-01T12:00:00.250Z'],
        ['* * * * * *', 'Europe/London', '2026-10-25T01:30:00Z'], // the repeated hour
        ['* * * * * *', 'Europe/London', '2026-03-29T00:59:59Z'], // just before the gap
        ['*/5 * * * * *', 'America/New_York', '2026-11-01T06:10:00Z'],
        ['0 9 * * 1-5', 'Asia/Tokyo', '2026-01-01T00:00:00Z'],
      ] as const;
      for (const [cron, timezone, at] of points) {
        const s = parseCron({ cron, timezone });
        let cursor = new Date(at);
        const started = performance.now();
        for (let i = 0; i < 20; i++) cursor = s.next(cursor)!;
        for (let i = 0; i < 20; i++) cursor = s.latest(new Date(cursor.getTime() - 1))!;
        const perSlot = (performance.now() - started) / 40;
        // a correctness bound (the old stepping took ~500 ms here), not a benchmark
        expect({ cron, timezone, perSlotUnder50ms: perSlot < 50 }).toMatchObject({
          perSlotUnder50ms: true,
        });
      }
    });

    it('a per-second schedule a day behind: the latest slots without enumerating the day', () => {
      const s = parseCron({ cron: '* * * * * *', timezone: 'Europe/London' });
      const started = performance.now();
      const slots = latestSlots(
        s,
        new Date('2026-06-01T00:00:00Z'),
        new Date('2026-06-02T00:00:00.400Z'),
        3,
      );
      expect(performance.now() - started).toBeLessThan(50);
      expect(slots.map((d) => d.toISOString())).toEqual([
        '2026-06-01T23:59:58.000Z',
        '2026-06-01T23:59:59.000Z',
        '2026-06-02T00:00:00.000Z',
      ]);
    });
  });

  describe('next and latest agree with stepping through every wall-clock match', () => {
    /** The old definition: step through every match from 3 h before, take the first one after. */
    const reference = (cron: string, timezone: string, after: Date): Date | null => {
      const matcher = new Cron(cron, { timezone: 'Etc/UTC', paused: true });
      let wall: Date | null = new Date(wallTimeOf(after, timezone) - 3 * 3_600_000);
      for (let i = 0; i < 100_000 && wall; i++) {
        wall = matcher.nextRun(wall);
        if (!wall) return null;
        const instant = instantOfWallTime(wall.getTime(), timezone);
        if (instant > after.getTime()) return new Date(instant);
      }
      return null;
    };
    const cases = [
      ['*/7 * * * *', 'Europe/London', '2026-10-25T00:00:00Z'],
      ['*/7 * * * *', 'Europe/London', '2026-03-29T00:00:00Z'],
      ['0,30 * * * *', 'America/New_York', '2026-11-01T04:00:00Z'],
      ['0,30 * * * *', 'America/New_York', '2026-03-08T05:00:00Z'],
      ['15 1,2 * * *', 'Australia/Lord_Howe', '2026-04-04T13:00:00Z'],
      ['15 1,2 * * *', 'Australia/Lord_Howe', '2026-10-03T14:00:00Z'],
      ['*/20 * * * * *', 'Europe/London', '2026-10-25T00:50:00Z'],
    ] as const;
    it.each(cases)('%s in %s from %s (random instants over 4 hours)', (cron, timezone, from) => {
      const s = parseCron({ cron, timezone });
      const start = Date.parse(from);
      let seed = 7;
      const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
      // the reference steps through 3 h of matches per call: fewer samples for seconds
      const samples = cron.split(' ').length === 6 ? 12 : 60;
      for (let i = 0; i < samples; i++) {
        const after = new Date(start + Math.floor(random() * 4 * 3_600_000));
        const expected = reference(cron, timezone, after);
        expect({ after, next: s.next(after) }).toEqual({ after, next: expected });
        // latest(next - 1 ms) is the slot before it, which must be at or before `after`
        if (expected) {
          const before = s.latest(new Date(expected.getTime() - 1));
          expect(before === null || before <= after).toBe(true);
          expect(s.latest(expected)).toEqual(expected);
          if (before) expect(reference(cron, timezone, before)).toEqual(expected);
        }
      }
    });
  });
});
