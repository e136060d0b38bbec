/**
 * Loading a config file: the `[network]` table and the `[otel]`/`[analytics]` tables, read
 * through the runtime's file capability. Used by the library (`.configFile()`) and the
 * command line alike.
 *
 * @module
 */
import { parseConfigText, type ParseOptions } from "./parse.ts";
import { parseTelemetryConfig } from "./telemetry.ts";
import { ConfigError, defaultNetworkConfig, type LoadedConfig } from "./types.ts";

/** Reads a text file; `null` when it does not exist. */
export interface TextFileReader {
  readTextFile(path: string): Promise<string | null>;
}

/**
 * Load and validate a config file (domain patterns included, by `parseConfigText`). A missing
 * file yields the defaults, unless it is `required` (named with `--config`: a typo must not
 * pass silently). `options.profile` reads that Codex permission profile. Throws {@link ConfigError} naming the key and line.
 */
export async function loadConfigFile(files: TextFileReader, path: string, required = false, options: ParseOptions = {}): Promise<LoadedConfig> {
  let text: string | null;
  try {
    text = await files.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`failed to parse ${path}: cannot read file: ${(e as Error).message}`, undefined, undefined, { cause: e });
  }
  if (text === null) {
    if (required) throw new ConfigError(`config file ${path} does not exist`);
    if (options.profile !== undefined) throw new ConfigError(`profile ${JSON.stringify(options.profile)} (chosen by --profile) does not exist: there is no config file ${path}`);
    return { network: defaultNetworkConfig(), warnings: [] };
  }
  const loaded = parseConfigText(text, path, options);
  const t = parseTelemetryConfig(text, path);
  loaded.telemetry = t.telemetry;
  loaded.warnings.push(...t.warnings);
  return loaded;
}
