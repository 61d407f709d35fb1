"""Runs a program under a real pseudo-terminal and plays a script of steps against it.

Usage: pty_session.py STEPS_JSON PROGRAM [ARGS...]

STEPS_JSON is a list of steps:
  ["size", rows, cols]   set the terminal's window size (the program gets SIGWINCH)
  ["send", text]         type text (a carriage return is the Enter key)
  ["expect", text]       read the program's output until it contains text (60 s at most)
  ["retry", send, text]  type send, read for 2 s until text shows; again, 60 s at most
                         (for what takes effect a moment later, such as a window size)
Then waits for the program to exit and prints {"status": N, "output": "..."} as JSON.
"""
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time

steps = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])

output = b""


def read_some(timeout):
    global output
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    if not data:
        return False
    output += data
    return True


def finish(status):
    print(json.dumps({"status": status, "output": output.decode("utf-8", "replace")}))
    sys.exit(0)


for step in steps:
    if step[0] == "size":
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", step[1], step[2], 0, 0))
    elif step[0] == "send":
        os.write(fd, step[1].encode())
    elif step[0] == "retry":
        deadline = time.monotonic() + 60
        seen = False
        while not seen and time.monotonic() < deadline:
            start = len(output)
            os.write(fd, step[1].encode())
            until = time.monotonic() + 2
            while time.monotonic() < until and step[2].encode() not in output[start:]:
                if not read_some(0.2):
                    break
            seen = step[2].encode() in output[start:]
        if not seen:
            print(json.dumps({"status": None, "missing": step[2],
                              "output": output.decode("utf-8", "replace")}))
            os.kill(pid, 9)
            sys.exit(0)
    elif step[0] == "expect":
        start = len(output)
        deadline = time.monotonic() + 60
        while step[1].encode() not in output[start:]:
            if time.monotonic() > deadline or not read_some(0.5):
                print(json.dumps({"status": None, "missing": step[1],
                                  "output": output.decode("utf-8", "replace")}))
                os.kill(pid, 9)
                sys.exit(0)

deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        while read_some(0.1):
            pass
        finish(os.waitstatus_to_exitcode(status))
    read_some(0.2)
os.kill(pid, 9)
finish(None)
