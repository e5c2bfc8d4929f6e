"""This process's memory, from /proc (stdlib only: the TF and the torch benches share it)."""

import resource


def rss_mb():
    """Resident set size now, MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb():
    """This process's peak RSS: VmHWM (ru_maxrss would carry a parent's peak across
    fork + exec on Linux, e.g. the TF driver's ~770 MB into the torch workers)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
