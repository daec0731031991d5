/**
 * Every NOTIFY channel Weft uses, named once. Senders (Signals, the SQL of the `weft_events`
 * trigger and the control-plane trigger) and listeners (the worker, RunObserver, the control
 * store's cache) refer to these names, so a channel cannot be renamed on one side only.
 *
 * Failure semantics: a notification is a hint, never the record. Each listener re-reads the
 * database on a wake-up and falls back to polling, and after a LISTEN outage it catches up
 * (pg-listener.ts), so a lost or folded notification delays work, it never loses it.
 */
export const CHANNELS = {
  /** Work became ready in an environment. Payload: the environment id ('' for any). */
  ready: 'weft_ready',
  /** A run was canceled: workers abort its attempts at once. Payload: the run id. */
  cancel: 'weft_cancel',
  /**
   * A run ended or paused: the one "run ended" signal, sent after the ending transaction
   * committed. Payload: the run id. RunObserver wakes both run waits and event streams on it.
   */
  runEnded: 'weft_run_finished',
  /**
   * Events of a watched run committed. Sent by the `notify_run_events` trigger
   * (src/store/sql/location/notify_run_events.sql), inside the event transaction. Payload: the run id.
   */
  events: 'weft_events',
  /**
   * Control-plane rows changed (keys, pauses). Sent by a control trigger inside the writing
   * transaction (src/store/sql/control/notify_control_changed.sql: such writes are rare). Payload:
   * the schema.
   */
  controlChanged: 'weft_control_changed',
} as const;

export type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];
