"""Calls per request, by callee, from a callgrind profile: heap and syscall wrappers.

usage: callgrind_calls.py CALLGRIND_OUT REQUESTS
Sums the call counts on every call arc (calls= lines) by callee name. Syscall wrappers give
syscalls per request, which callgrind's instruction counts (user space only) do not show.
"""

import re
import sys

WATCH = ["malloc", "memalign", "free", "operator new(unsigned long)", "operator delete(void*)",
         "recv", "recvmsg", "read", "readv", "send", "sendmsg", "write", "writev", "epoll_wait",
         "epoll_ctl", "timerfd_settime", "clock_gettime", "pthread_mutex_lock"]


def main() -> None:
    path, requests = sys.argv[1], int(sys.argv[2])
    names: dict[str, str] = {}
    calls: dict[str, int] = {}
    callee = None

    def resolve(spec: str) -> str:
        # Names are compressed: "(12) name" defines id 12, a later "(12)" refers to it.
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                resolve(line[3:].strip())
            elif line.startswith("cfn="):
                callee = resolve(line[4:].strip())
            elif line.startswith("calls=") and callee is not None:
                calls[callee] = calls.get(callee, 0) + int(line[6:].split()[0])
    for w in WATCH:
        n = sum(v for k, v in calls.items() if k == w or k.startswith(w + "@"))
        if n:
            print(f"  {w:32s} {n / requests:8.2f}")


if __name__ == "__main__":
    main()
