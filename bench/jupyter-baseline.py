#!/usr/bin/python3
"""The baseline a self-hoster would otherwise run: a Jupyter kernel (Debian's ipykernel) started and
driven through jupyter_client on the host, with no sandbox. Prints JSON samples in milliseconds:
cold = start a kernel until `print(1)` has answered; warm = `print(1)` on a running kernel.

usage: jupyter-baseline.py <cold runs> <warm runs>
"""
import json
import sys
import time

from jupyter_client.manager import start_new_kernel


def run(client, code):
    output = []
    reply = client.execute_interactive(
        code,
        timeout=30,
        output_hook=lambda msg: output.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None,
    )
    if reply["content"]["status"] != "ok" or "".join(output) != "1\n":
        raise SystemExit(f"kernel answered {reply['content']['status']} {output!r}")


def main():
    cold_runs, warm_runs = int(sys.argv[1]), int(sys.argv[2])
    cold, warm = [], []
    for i in range(cold_runs):
        began = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="python3")
        try:
            run(client, "print(1)")
            cold.append((time.perf_counter() - began) * 1000)
            if i == 0:
                for _ in range(warm_runs):
                    began = time.perf_counter()
                    run(client, "print(1)")
                    warm.append((time.perf_counter() - began) * 1000)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    json.dump({"cold": cold, "warm": warm}, sys.stdout)


main()
