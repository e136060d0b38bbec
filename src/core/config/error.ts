/**
 * The error every configuration problem is reported with: a bad key in a file, a bad builder
 * argument, a bad environment variable. Its own module so every config file can import it.
 *
 * @module
 */

/** A configuration problem. `key` is the dotted TOML key (`network.mode`), `line` 1-based. */
export class ConfigError extends TypeError {
  constructor(
    message: string,
    readonly key?: string,
    readonly line?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ConfigError";
  }
}
