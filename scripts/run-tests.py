#!/usr/bin/env python3
"""Runs the workspace's test binaries, built beforehand by
`cargo test --workspace --no-run --message-format=json`, in two lanes at once.

Cargo runs test binaries one after another and holds the build directory's lock while they run,
so two `cargo test` commands cannot overlap. The suite's time is mostly end-to-end tests on a
test desktop (a browser, the agent, OCR), which must not share the two cores with each other;
everything else (the vault's tests against PostgreSQL and S3, unit tests, the delivery tests
that mostly wait for a vault to come back) runs beside them.

Usage: run-tests.py ARTIFACTS.json [LOG | --list]  (cargo's JSON messages; the full output
goes to LOG too; --list shows the lanes without running anything). Each binary runs as cargo would run it: from its package's directory, with
`--test-threads=2`. Prints each lane's output after both lanes end, then exits non-zero when
any binary failed.
"""

import json
import os
import subprocess
import sys
import threading
import time

# Integration tests of these packages start a test desktop of their own.
DESKTOP_PACKAGES = {"vigil-agent", "vigil-mask", "vigil-e2e"}
# ...except these, which mostly wait (a vault that is away for minutes).
WAITING_TESTS = {("vigil-agent", "delivery")}


def package_name(artifact):
    """The package's name (its manifest's first `name`) and directory."""
    manifest_dir = os.path.dirname(artifact["manifest_path"])
    with open(artifact["manifest_path"], encoding="utf-8") as manifest:
        for line in manifest:
            if line.startswith("name"):
                return line.split("=", 1)[1].strip().strip('"'), manifest_dir
    return os.path.basename(manifest_dir), manifest_dir


def test_binaries(artifacts_path):
    binaries = []
    with open(artifacts_path, encoding="utf-8") as messages:
        for line in messages:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("reason") != "compiler-artifact":
                continue
            if not message["profile"]["test"] or not message.get("executable"):
                continue
            package, directory = package_name(message)
            kind = message["target"]["kind"][0]
            name = message["target"]["name"]
            desktop = (
                kind == "test"
                and package in DESKTOP_PACKAGES
                and (package, name) not in WAITING_TESTS
            )
            binaries.append(
                {
                    "package": package,
                    "dir": directory,
                    "name": name,
                    "label": f"{package} {kind} {name}",
                    "executable": message["executable"],
                    "desktop": desktop,
                }
            )
    return binaries


def run_lane(name, binaries, results, printing):
    output = []
    for binary in binaries:
        env = dict(os.environ)
        env["CARGO_MANIFEST_DIR"] = binary["dir"]
        env["CARGO_PKG_NAME"] = binary["package"]
        deps = os.path.dirname(binary["executable"])
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in [deps, env.get("LD_LIBRARY_PATH", "")] if p
        )
        started = time.monotonic()
        with printing:
            print(f"[{name}] running {binary['label']}", flush=True)
        done = subprocess.run(
            [binary["executable"], "--test-threads=2"],
            cwd=binary["dir"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        seconds = time.monotonic() - started
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        with printing:
            print(f"[{name}] {binary['label']}: {status} in {seconds:.0f} s", flush=True)
        output.append(f"     Running {binary['label']} ({binary['executable']})\n")
        output.append(done.stdout.decode("utf-8", "replace"))
        results.append((binary["label"], done.returncode))
    return output


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binaries = test_binaries(sys.argv[1])
    if sys.argv[2:] == ["--list"]:
        for binary in binaries:
            lane = "desktop" if binary["desktop"] else "other"
            print(f"{lane:8} {binary['label']}")
        return
    if not binaries:
        sys.exit("run-tests.py: no test binaries in the artifact list")
    lanes = {
        "desktop": [b for b in binaries if b["desktop"]],
        "other": [b for b in binaries if not b["desktop"]],
    }
    # The waiting tests first: their minutes of waiting overlap the desktop lane.
    lanes["other"].sort(key=lambda b: (b["package"], b["name"]) not in WAITING_TESTS)
    results, outputs, printing = [], {}, threading.Lock()

    def lane(name):
        outputs[name] = run_lane(name, lanes[name], results, printing)

    threads = [threading.Thread(target=lane, args=(name,)) for name in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = "".join(outputs["desktop"] + outputs["other"])
    sys.stdout.write(text)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w", encoding="utf-8") as log:
            log.write(text)
    failed = [label for label, code in results if code != 0]
    for label in failed:
        print(f"failed: {label}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
