"""Times whole commands against each other in the same run, for the Parquet benchmark
scripts (parquet_read.sh, parquet_write.sh).

usage: parquet_bench.py ROUNDS NAME=COMMAND [NAME=COMMAND ...]

Each round runs every command once, in order (a warm-up round first, not counted), so
that the machine's noise falls on all of them alike. Prints, per command: the median
wall time, the median CPU time (user + system of the process and its children), CPU/wall,
the median peak RSS, and the ratio of the first command's wall time to each other's
(> 1 means the first is faster). A command that fails stops the benchmark.
"""

import resource
import shlex
import statistics
import subprocess
import sys
import time


def run(command):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {command}\n{done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest of any child so far; measured per run below.
    return wall, cpu


def peak_rss_mib(command):
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "sh", "-c", command],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = done.stderr.decode().strip().splitlines()[-1]
    return int(last) / 1024


def main():
    rounds = int(sys.argv[1])
    commands = [arg.split("=", 1) for arg in sys.argv[2:]]
    for name, command in commands:
        print(f"{name}: {command}", flush=True)
    for _, command in commands:
        run(command)
    walls = {name: [] for name, _ in commands}
    cpus = {name: [] for name, _ in commands}
    for _ in range(rounds):
        for name, command in commands:
            wall, cpu = run(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    rss = {name: peak_rss_mib(command) for name, command in commands}
    first = commands[0][0]
    base = statistics.median(walls[first])
    print()
    print(f"median of {rounds} rounds (after a warm-up round), whole process")
    print()
    print("| command | wall s | CPU s | CPU/wall | peak RSS MiB | "
          f"{first} speed relative to it |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"| {name} | {wall:.3f} | {cpu:.2f} | {cpu / wall:.2f} | {rss[name]:.0f} | "
              f"{wall / base:.2f} |")
    print()
    print("all walls: " + "; ".join(
        f"{name} " + " ".join(f"{w:.2f}" for w in walls[name]) for name, _ in commands))


if __name__ == "__main__":
    main()
