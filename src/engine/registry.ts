/**
 * The workflows this process can execute, by id and by version. Registering compiles the
 * definition (validation happens here) and records its version in the control plane. A step of
 * a run pinned to a version this process does not hold in memory (after a restart) runs the
 * loaded code only when that step's hash is unchanged; otherwise the attempt fails with
 * `workflow_version_unavailable` instead of silently running different code.
 */
import { WeftError } from '../core/errors.js';
import { compileWorkflow, type CompiledStep, type CompiledWorkflow } from '../core/graph.js';
import type { Workflow } from '../core/workflow.js';
import type { ControlStore } from '../store/control-store.js';

export type AnyWorkflow =
  Workflow<never, Record<string, unknown>, never> | Workflow<unknown, Record<string, unknown>>;

export class WorkflowRegistry {
  private readonly current = new Map<string, CompiledWorkflow>();
  private readonly byVersionId = new Map<string, CompiledWorkflow>();

  constructor(
    private readonly control: ControlStore,
    readonly environmentId: string,
  ) {}

  /** Validate, compile and register (idempotent). Returns the version record. */
  async register(
    workflow: AnyWorkflow,
  ): Promise<{ workflowId: string; versionId: string; version: number; created: boolean }> {
    const compiled = compileWorkflow(workflow as Workflow<unknown, Record<string, unknown>>);
    const result = await this.control.registerWorkflow(this.environmentId, compiled);
    this.current.set(compiled.id, compiled);
    this.byVersionId.set(result.versionId, compiled);
    return { workflowId: compiled.id, ...result };
  }

  /** Forget a workflow (dev reload removed its file): its steps are no longer claimed here. */
  unregister(workflowId: string): void {
    this.current.delete(workflowId);
  }

  /**
   * Whether the environment (or its project) is paused: the worker then claims nothing. Read
   * through the control store's cache, which drops entries on the `weft_control_changed`
   * notification (listened to from the first call), so a pause reaches every worker at once. A
   * database error reads as "not paused": the claim that follows reports and retries it.
   */
  async isPaused(): Promise<boolean> {
    this.control.watchChanges().catch(() => {
      // without the listener the cache's TTL (5 s) bounds how late a pause is seen
    });
    try {
      return (await this.control.getEnvironment(this.environmentId))?.paused ?? false;
    } catch {
      return false;
    }
  }

  workflowIds(): string[] {
    return [...this.current.keys()];
  }

  get(workflowId: string): CompiledWorkflow | undefined {
    return this.current.get(workflowId);
  }

  async resolveStep(
    workflowId: string,
    versionId: string,
    stepId: string,
  ): Promise<{ workflow: CompiledWorkflow; step: CompiledStep }> {
    const exact = this.byVersionId.get(versionId);
    if (exact) {
      const step = exact.steps.get(stepId);
      if (step) return { workflow: exact, step };
    }
    const current = this.current.get(workflowId);
    const version = await this.control.getVersion(versionId);
    const wanted = version?.graph.nodes.find((n) => n.id === stepId);
    const candidate = current?.steps.get(stepId);
    if (current && candidate && wanted && candidate.hash === wanted.hash) {
      return { workflow: current, step: candidate };
    }
    throw new WeftError(
      'workflow_version_unavailable',
      `Step \`${stepId}\` of workflow \`${workflowId}\` version ${version?.version ?? versionId} is not loaded in this worker${candidate ? ' (the loaded code of that step differs)' : ''}. Run a worker with that version's code, or rerun the run on the current version.`,
      { details: { workflowId, versionId, stepId } },
    );
  }
}
