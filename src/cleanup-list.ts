/**
 * What a running Pulse must undo, in the order its parts started.
 *
 * Each part registers its cleanup the moment it has started, so the list always
 * holds exactly what is running. `stop()` and a start that fails halfway run the
 * same list, last part first: a part stops before the parts it depends on (the
 * listener before the pool its requests use), and a failed start leaves nothing
 * behind (no LISTEN session, no timer, no pool).
 */
import type { Logger } from './logger';

/**
 * One part's cleanup: a name for the logs (a function when the line should say
 * how things stand when the step starts), and what to do.
 */
export interface CleanupStep {
  readonly name: string | (() => string);
  run(): Promise<void> | void;
}

export class CleanupList {
  readonly #steps: CleanupStep[] = [];
  readonly #logger: Logger;
  #running: Promise<void> | null = null;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Registers the cleanup of a part that has just started. */
  add(name: CleanupStep['name'], run: () => Promise<void> | void): void {
    if (this.#running) throw new Error(`cannot register "${nameOf({ name })}": the cleanup list is already running`);
    this.#steps.push({ name, run });
  }

  /** Names of the registered steps, in the order they will run (last added first). */
  get pending(): string[] {
    return this.#steps.map(nameOf).reverse();
  }

  /**
   * Runs every step, last added first, each once, logging `<why>: <step>`. A step
   * that fails is logged and the rest still run (a stuck listener must not keep
   * the pool open); the first failure is thrown at the end. Calling it again
   * returns the same run.
   */
  run(why: string): Promise<void> {
    this.#running ??= (async () => {
      let firstFailure: { error: unknown } | null = null;
      for (const step of [...this.#steps].reverse()) {
        const name = nameOf(step);
        this.#logger.info(`${why}: ${name}`);
        try {
          await step.run();
        } catch (error) {
          this.#logger.error(`${why}: ${name} failed`, { error });
          firstFailure ??= { error };
        }
      }
      this.#logger.info(`${why}: done`);
      if (firstFailure) throw firstFailure.error;
    })();
    return this.#running;
  }
}

function nameOf(step: Pick<CleanupStep, 'name'>): string {
  return typeof step.name === 'function' ? step.name() : step.name;
}
