/**
 * Python `requests` as a client: one request with exactly the given environment (plus PATH), so
 * the proxy and CA variables it reads (`HTTPS_PROXY`, `REQUESTS_CA_BUNDLE`, …) are the test's.
 * Async (spawn): a proxy under test may run on this process's event loop.
 */
import { spawn } from "node:child_process";
import { withDeadline } from "./util.ts";

/** Prints the status, `x-proxy-error` (`-` when absent) and the body, one per line. */
const PYTHON_REQUEST = `
import sys, requests
r = requests.request(sys.argv[1], sys.argv[2], data=(b"x=1" if sys.argv[1] == "POST" else None), timeout=10)
print(r.status_code)
print(r.headers.get("x-proxy-error", "-"))
print(r.text)
`;

/** Run `method target` with `requests` under `env`; stdout is status, x-proxy-error and body lines. */
export function pythonRequest(env: Record<string, string>, method: string, target: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("python3", ["-c", PYTHON_REQUEST, method, target], { env: { ...env, PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
  return withDeadline(done, 20_000, `python3 ${method} ${target}`).catch((e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
}
