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

/**
 * A problem in one entry of a `[network]` array of tables (`mitm_hooks`, `limited_mode_allow`):
 * `index` is the entry (`undefined`: the list itself), `path` the key below it (`.match.methods`).
 * The message reads `LIST[2].match.methods: …`; the config parser adds the file, line and table.
 */
export class TableListError extends Error {
  override readonly name = "TableListError";
  constructor(
    readonly list: string,
    readonly index: number | undefined,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${list}${index === undefined ? "" : `[${index}]`}${path}: ${detail}`);
  }
}
