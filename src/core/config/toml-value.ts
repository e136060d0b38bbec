/**
 * Naming the type of a parsed TOML value for error messages.
 *
 * @module
 */

/** TOML type names as a user would write them in an error message. */
export type TomlTypeName =
  | "string"
  | "integer"
  | "float"
  | "boolean"
  | "datetime"
  | "array"
  | "table";

/**
 * The TOML type of a value produced by smol-toml parsing with `integersAsBigInt: true`
 * (integers are `bigint`, floats `number`).
 */
export function tomlTypeName(value: unknown): TomlTypeName {
  if (typeof value === "string") return "string";
  if (typeof value === "bigint") return "integer";
  if (typeof value === "number") return "float";
  if (typeof value === "boolean") return "boolean";
  if (value instanceof Date) return "datetime";
  if (Array.isArray(value)) return "array";
  return "table";
}

/** True for a TOML table (a plain object, not an array or date). */
export function isTomlTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && tomlTypeName(value) === "table";
}
