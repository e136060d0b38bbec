/**
 * Method policy shared by the HTTP paths (limited mode).
 *
 * @module
 */

/** Methods limited mode lets through (docs/behaviour.md §3). */
export const LIMITED_MODE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);
