"""Sandpool's Python interpreter agent.

Runs inside a sandbox as the child of the container's init. It listens on a unix socket in the
sandbox's state directory and executes code sent by the host in one persistent namespace, the way a
notebook kernel does. Messages are JSON lines (see interpreter/PROTOCOL.md). User output is captured at
the file-descriptor level and never shares a channel with the protocol.

Standard library only: it must start in milliseconds and cost little memory while idle.
"""

import ast
import codecs
import importlib.abc
import importlib.machinery
import json
import linecache
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from importlib.util import module_from_spec, spec_from_file_location


def _sibling(name):
    """A module beside this file, loaded without putting this directory on sys.path (the agent runs
    with -I, so nothing in /mnt/data or here shadows what the user's code imports)."""
    spec = spec_from_file_location(f"sandpool_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plain_text = _sibling("plain_text").plain_text
rich_output = _sibling("rich_output")
#: E2B's services, started on request (start_envd); loaded here, where the agent's own code is in reach.
envd_program = _sibling("envd")


class ShowFigures(importlib.abc.MetaPathFinder):
    """Makes pyplot's show() hand the open figures to the execution under way, as Jupyter's inline
    backend displays them (Agg's show() does nothing). pyplot is patched when the user's code imports
    it, so an agent that never plots never imports matplotlib, and child processes keep plain Agg."""

    def __init__(self):
        self.on_show = None

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.show = lambda *args, **kwargs: self.on_show() if self.on_show is not None else None

        spec.loader.exec_module = exec_module
        return spec


pyplot_show = ShowFigures()

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# A reader keeps at most this many bytes per character of the cap (UTF-8 needs up to 4).
BYTES_PER_CHAR = 4
SHELLS = {"bash": "/bin/bash", "sh": "/bin/sh"}
# After the code finishes, how long to wait for output still in flight from its child processes.
DRAIN_SECONDS = 0.05
MPL_CACHE_SOURCE = "/etc/sandpool/matplotlib"
# Background processes: records kept per session, how many may run at once, and the newest characters
# of each output stream kept for reading.
MAX_PROCESSES = 64
MAX_RUNNING_PROCESSES = 16
MAX_PROCESS_OUTPUT_CHARS = 1_000_000
# How long a write to a process's stdin waits for the process to read, so one that never does
# cannot hold the agent.
STDIN_WAIT_SECONDS = 1.0


class StreamCapture:
    """Points one file descriptor at a pipe for the duration of an execution and keeps a bounded prefix.

    With `on_text`, what is kept is also handed over as it is read (decoded, a character never split),
    until the capture finishes: the host streams it to a client that asked.
    """

    def __init__(self, fd, max_chars, on_text=None):
        self.fd = fd
        self.on_text = on_text
        self.streamed = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.max_bytes = max_chars * BYTES_PER_CHAR
        self.max_chars = max_chars
        self.chunks = []
        self.kept = 0
        self.total = 0
        read_end, write_end = os.pipe()
        self.read_end = read_end
        self.saved = os.dup(fd)
        os.dup2(write_end, fd)
        os.close(write_end)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            room = self.max_bytes - self.kept
            if room > 0:
                self.chunks.append(chunk[:room])
                self.kept += min(room, len(chunk))
                on_text = self.on_text
                if on_text is not None:
                    text = self.decoder.decode(chunk[:room])[: self.max_chars - self.streamed]
                    self.streamed += len(text)
                    if text:
                        on_text(text)

    def finish(self):
        """Restores the descriptor and returns (text, truncated)."""
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        self.thread.join(DRAIN_SECONDS)
        # A reader still running either waits for a child process the code left holding the write end
        # (stop waiting for it), or has not been scheduled yet: a sandbox at its CPU quota can sit out
        # most of a period. Then no one else can write, and it reaches EOF once it has read the rest.
        if self.thread.is_alive() and not self._held_elsewhere():
            self.thread.join()
        # The reply follows: output a child process still writes is not streamed after it.
        self.on_text = None
        text = b"".join(self.chunks).decode("utf-8", errors="replace")
        truncated = self.total > self.kept or len(text) > self.max_chars
        if self.thread.is_alive():
            threading.Thread(target=self._drain_and_close, daemon=True).start()
        else:
            os.close(self.read_end)
        return text[: self.max_chars], truncated

    def _held_elsewhere(self):
        """Whether another process (a child of the code) still holds this pipe."""
        pipe = f"pipe:[{os.fstat(self.read_end).st_ino}]"
        me = str(os.getpid())
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                descriptors = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for descriptor in descriptors:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{descriptor}") == pipe:
                        return True
                except OSError:
                    pass
        return False

    def _drain_and_close(self):
        self.thread.join()
        os.close(self.read_end)


def captures(max_output_chars, on_output):
    """Captures of descriptors 1 and 2; with `on_output(stream, text)`, streamed as they are read."""
    stream = (lambda name: (lambda text: on_output(name, text))) if on_output else (lambda name: None)
    return StreamCapture(1, max_output_chars, stream("stdout")), StreamCapture(2, max_output_chars, stream("stderr"))


def finish_captures(stdout, stderr):
    """Ends both captures; the reply's output fields."""
    stdout_text, stdout_truncated = stdout.finish()
    stderr_text, stderr_truncated = stderr.finish()
    return {"stdout": stdout_text, "stderr": stderr_text, "stdoutTruncated": stdout_truncated, "stderrTruncated": stderr_truncated}


def json_value(value):
    """The value of the last expression as JSON: primitives as themselves, anything else as the text a
    Jupyter kernel shows for it (IPython's text/plain layout)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.ndim == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else repr(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    try:
        return plain_text(value)
    except RecursionError:
        return repr(value)


def png_of_figures():
    """Renders every open matplotlib figure as PNG and closes it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    images = [png_image(rich_output.png_of_figure(plt.figure(number))) for number in plt.get_fignums()]
    plt.close("all")
    return images


def png_image(data):
    """A base64 PNG as the image output Azure's API answers."""
    return {"type": "image", "format": "png", "base64_data": data}


def png_of_value(value):
    """A PIL image as the last expression is shown as a picture, as notebooks do."""
    data = rich_output.png_of_pil(value)
    return None if data is None else png_image(data)


def is_matplotlib_object(value):
    module = type(value).__module__ or ""
    if module.startswith("matplotlib."):
        return True
    return isinstance(value, list) and bool(value) and all((type(v).__module__ or "").startswith("matplotlib.") for v in value)


def new_namespace():
    return {"__name__": "__main__", "__builtins__": __builtins__}


class Context:
    """A namespace of its own with its own working directory and execution count, as a notebook
    kernel is (E2B's contexts). Runs in a context answer rich results (rich_output)."""

    def __init__(self, context_id, language, cwd, namespace):
        self.id = context_id
        self.language = language
        self.cwd = cwd
        self.namespace = namespace
        self.executions = 0

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}


class ContextError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


#: The context E2B's code runs in when it names none: the agent's one namespace, which Azure's
#: executions run in too, so both APIs see the same state.
DEFAULT_CONTEXT = "default"
#: Contexts a session keeps at once (each holds a namespace).
MAX_CONTEXTS = 32


class Interpreter:
    def __init__(self):
        self.shown = []
        self.namespace = new_namespace()
        self.executions = 0
        self.cells_compiled = 0
        self.running_user_code = False
        self.processes = Processes()
        self.contexts = {}
        # Where display() and shown figures go during a run in a context.
        self.on_display = None

    def home(self):
        return os.environ.get("HOME", "/home/user")

    def context(self, context_id):
        """The context of that id; the default one is made when first named."""
        if context_id == DEFAULT_CONTEXT and DEFAULT_CONTEXT not in self.contexts:
            self.contexts[DEFAULT_CONTEXT] = Context(DEFAULT_CONTEXT, "python", self.home(), self.namespace)
        found = self.contexts.get(context_id)
        if found is None:
            raise ContextError("ContextNotFound", f"no context {context_id}")
        return found

    def create_context(self, language, cwd):
        if language != "python":
            raise ContextError("UnsupportedLanguage", f"this sandbox runs python; a {language} context needs a template of that language")
        if len(self.contexts) >= MAX_CONTEXTS:
            raise ContextError("TooManyContexts", f"{MAX_CONTEXTS} contexts exist already; remove one first")
        cwd = cwd or self.home()
        if not os.path.isdir(cwd):
            raise ContextError("BadRequest", f"{cwd} is no directory")
        context = Context(uuid.uuid4().hex, language, cwd, new_namespace())
        self.contexts[context.id] = context
        return context.describe()

    def list_contexts(self):
        self.context(DEFAULT_CONTEXT)
        return [context.describe() for context in self.contexts.values()]

    def restart_context(self, context_id):
        """Starts the context afresh: a new namespace (the default one's is emptied in place, since
        Azure's executions share it) and a new count."""
        context = self.context(context_id)
        if context_id == DEFAULT_CONTEXT:
            self.namespace.clear()
            self.namespace.update(new_namespace())
        else:
            context.namespace = new_namespace()
        context.executions = 0
        return context.describe()

    def remove_context(self, context_id):
        self.context(context_id)
        if context_id == DEFAULT_CONTEXT:
            self.restart_context(context_id)
        del self.contexts[context_id]

    def display(self, *values, **_options):
        """IPython's display(): in a context's run, each value becomes a result; elsewhere its text
        is printed, as a console shows it."""
        for value in values:
            if self.on_display is not None:
                self.on_display(rich_output.result(value, False, plain_text))
            else:
                print(plain_text(value))

    def on_interrupt(self, signum, frame):
        # An interrupt that lands between executions, or while a reply is sent, has nothing to stop.
        if self.running_user_code:
            raise KeyboardInterrupt

    def compile(self, code):
        """Splits the code into a body and an optional trailing expression whose value is returned."""
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        # Each cell keeps its source under its own name, so a traceback through a function an
        # earlier cell defined shows that cell's lines, as a notebook's does.
        self.cells_compiled += 1
        filename = f"<cell-{self.cells_compiled}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename=filename, mode="exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, filename, "exec", flags=flags)
        tail = compile(last, filename, "eval", flags=flags) if last is not None else None
        return body, tail

    def run(self, code_object, namespace):
        result = eval(code_object, namespace)
        if code_object.co_flags & 0x80:  # CO_COROUTINE: the code used top-level await
            import asyncio

            result = asyncio.new_event_loop().run_until_complete(result)
        return result

    def show_figures(self, on_image):
        """The code called plt.show(): its open figures become images now, streamed when asked."""
        for image in png_of_figures():
            self.shown.append(image)
            if on_image is not None:
                on_image(image)

    def execute(self, code, max_output_chars, on_output=None, on_image=None, context=None, env=None, on_result=None):
        """Runs a cell. In a context (E2B's), it runs there, with `env` set for the run, and
        answers rich results: what it displayed or showed (each also handed to `on_result` then),
        the figures left open, then its value; else images and the value as `result`."""
        if context is not None:
            return self.execute_in_context(context, code, max_output_chars, on_output, env or {}, on_result)
        self.executions += 1
        self.shown = []
        pyplot_show.on_show = lambda: self.show_figures(on_image)
        images = []

        def render(value):
            pyplot_show.on_show = None
            images.extend(self.shown)
            try:
                images.extend(png_of_figures())
                image_value = png_of_value(value)
                if image_value is not None:
                    # After the images already shown (and streamed), which keep their places.
                    images.insert(len(self.shown), image_value)
                    return None
                if images and is_matplotlib_object(value):
                    return None
            except Exception as exc:
                print(f"sandpool: could not render images: {exc!r}", file=sys.stderr)
            return value

        value, error, interrupted, outputs, duration_ms = self.run_cell(code, self.namespace, max_output_chars, on_output, render)
        return {
            "status": "failed" if error else "succeeded",
            "interrupted": interrupted,
            **outputs,
            "result": json_value(value),
            "images": images,
            "error": error,
            "durationMs": round(duration_ms, 3),
        }

    def execute_in_context(self, context, code, max_output_chars, on_output, env, on_result):
        self.executions += 1
        context.executions += 1
        results = []

        def displayed(found):
            results.append(found)
            if on_result is not None:
                on_result(found)

        self.on_display = displayed
        pyplot_show.on_show = lambda: self.display_figures()
        context.namespace.setdefault("display", self.display)
        saved_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        previous_cwd = os.getcwd()
        try:
            try:
                os.chdir(context.cwd)
            except OSError:
                # Its directory is gone: it runs at home, as a new context would.
                os.chdir(self.home())

            def render(value):
                try:
                    self.display_figures()
                    # A cell's trailing semicolon hides its value, as in a notebook.
                    if value is not None and not code.rstrip().endswith(";"):
                        displayed(rich_output.result(value, True, plain_text))
                except Exception as exc:
                    print(f"sandpool: could not render a result: {exc!r}", file=sys.stderr)

            error, interrupted, outputs, duration_ms = self.run_cell(code, context.namespace, max_output_chars, on_output, render)[1:]
        finally:
            self.on_display = None
            pyplot_show.on_show = None
            context.cwd = os.getcwd()
            os.chdir(previous_cwd)
            for name, before in saved_env.items():
                if before is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = before
        return {
            "status": "failed" if error else "succeeded",
            "interrupted": interrupted,
            **outputs,
            "result": None,
            "images": [],
            "results": results,
            "executionCount": context.executions,
            "error": error,
            "durationMs": round(duration_ms, 3),
        }

    def display_figures(self):
        """Every open matplotlib figure becomes a result of the run (and is closed)."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for number in plt.get_fignums():
            self.on_display(rich_output.figure_result(plt.figure(number)))
        plt.close("all")

    def run_cell(self, code, namespace, max_output_chars, on_output, render):
        """Runs `code` in `namespace` with its output captured, then `render(value)` (still
        captured, so what it prints is the run's): the value it answers, the error, whether the run
        was interrupted, its output fields, and how long it ran (ms)."""
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = captures(max_output_chars, on_output)
        # A pipe makes print() block-buffered: a streamed run flushes each line as a terminal would.
        line_buffered = sys.stdout.line_buffering
        if on_output is not None:
            sys.stdout.reconfigure(line_buffering=True)
        started = time.monotonic()
        value = None
        error = None
        interrupted = False
        try:
            body, tail = self.compile(code)
            self.running_user_code = True
            try:
                self.run(body, namespace)
                if tail is not None:
                    value = self.run(tail, namespace)
            finally:
                self.running_user_code = False
        except KeyboardInterrupt:
            interrupted = True
            error = {"name": "KeyboardInterrupt", "message": "execution interrupted", "traceback": ""}
        except BaseException as exc:  # the user's code may raise anything, SystemExit included
            error = {
                "name": type(exc).__name__,
                "message": str(exc),
                "traceback": "".join(traceback.format_exception(type(exc), exc, user_frames(exc.__traceback__))),
            }
        duration_ms = (time.monotonic() - started) * 1000
        value = render(value)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout.reconfigure(line_buffering=line_buffered)
        except Exception:
            pass
        return value, error, interrupted, finish_captures(stdout, stderr), duration_ms

    def shell(self, command, shell_name, max_output_chars, on_output=None):
        """Runs one command line in a fresh shell in /mnt/data; files persist between commands, shell state does not."""
        self.executions += 1
        stdout, stderr = captures(max_output_chars, on_output)
        started = time.monotonic()
        exit_code = None
        error = None
        interrupted = False
        process = None
        try:
            self.running_user_code = True
            try:
                # Its own process group, so an interrupt can stop the command and everything it started.
                process = subprocess.Popen([SHELLS[shell_name], "-c", command], stdin=subprocess.DEVNULL, start_new_session=True)
                exit_code = process.wait()
            finally:
                self.running_user_code = False
        except KeyboardInterrupt:
            interrupted = True
            error = {"name": "ExecutionTimeout", "message": "command interrupted", "traceback": ""}
        except OSError as exc:
            error = {"name": "CommandStartError", "message": str(exc), "traceback": ""}
        if interrupted and process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            exit_code = None
        if exit_code is not None and exit_code < 0:
            exit_code = 128 - exit_code  # killed by a signal: the shell's own convention
        duration_ms = (time.monotonic() - started) * 1000
        return {
            "status": "succeeded" if exit_code == 0 else "failed",
            "interrupted": interrupted,
            **finish_captures(stdout, stderr),
            "result": None,
            "images": [],
            "error": error,
            "exitCode": exit_code,
            "durationMs": round(duration_ms, 3),
        }


class ProcessOutput:
    """One stream of a background process: read by a thread as it is written, the newest
    MAX_PROCESS_OUTPUT_CHARS characters kept. Offsets count characters from the process's start, so a
    reader asks for what follows the last offset it saw."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.dropped = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.pipe, 65536)
            except OSError:
                chunk = b""
            text = self.decoder.decode(chunk, final=not chunk)
            with self.lock:
                self.text += text
                excess = len(self.text) - MAX_PROCESS_OUTPUT_CHARS
                if excess > 0:
                    self.text = self.text[excess:]
                    self.dropped += excess
            if not chunk:
                os.close(self.pipe)
                return

    def since(self, offset, max_chars):
        """What follows `offset` (from the oldest kept character when those are gone), at most
        `max_chars`, with the offset where it starts and the one to ask from next."""
        with self.lock:
            start = max(offset, self.dropped)
            text = self.text[start - self.dropped : start - self.dropped + max_chars]
            return {"from": start, "text": text, "next": start + len(text), "end": self.dropped + len(self.text)}


class BackgroundProcess:
    def __init__(self, command, shell_name):
        stdin_read, self.stdin = os.pipe()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            # Its own process group, so a kill reaches everything it started; /mnt/data as for `shell`.
            self.popen = subprocess.Popen(
                [SHELLS[shell_name], "-c", command],
                stdin=stdin_read,
                stdout=stdout_write,
                stderr=stderr_write,
                start_new_session=True,
            )
        except OSError:
            for fd in (self.stdin, stdout_read, stderr_read):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                os.close(fd)
        os.set_blocking(self.stdin, False)
        self.command = command
        self.started_at = time.time()
        self.stdout = ProcessOutput(stdout_read)
        self.stderr = ProcessOutput(stderr_read)
        self.ended_at = None
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self):
        self.popen.wait()
        self.ended_at = time.time()

    @property
    def running(self):
        return self.ended_at is None

    def describe(self):
        # The reaping thread owns waitpid (poll() answers None while it waits), and sets ended_at last.
        ended_at = self.ended_at
        exit_code = None if ended_at is None else self.popen.returncode
        if exit_code is not None and exit_code < 0:
            exit_code = 128 - exit_code
        return {
            "pid": self.popen.pid,
            "command": self.command,
            "running": ended_at is None,
            "exitCode": exit_code,
            "startedAt": self.started_at,
            "endedAt": ended_at,
        }

    def write(self, text, close):
        """Writes to the process's stdin without ever blocking the agent on a process that does not read."""
        if self.stdin is None:
            raise ProcessError("StdinClosed", "the process's stdin is closed")
        data = text.encode()
        written = 0
        deadline = time.monotonic() + STDIN_WAIT_SECONDS
        try:
            while written < len(data):
                if not select.select([], [self.stdin], [], max(0, deadline - time.monotonic()))[1]:
                    raise ProcessError("StdinFull", f"the process is not reading its stdin: {written} of {len(data)} bytes were written")
                written += os.write(self.stdin, data[written:])
        except BrokenPipeError:
            close = True
        if close:
            os.close(self.stdin)
            self.stdin = None

    def kill(self, signal_number):
        try:
            os.killpg(self.popen.pid, signal_number)
        except ProcessLookupError:
            pass

    def forget(self):
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None


class ProcessError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Processes:
    """A session's background processes: started with a shell like `shell`, listed, read, written to
    and signalled by pid. They live until they exit or the sandbox ends; the newest MAX_PROCESSES
    records are kept, and at most MAX_RUNNING_PROCESSES run at once."""

    SIGNALS = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "INT": signal.SIGINT, "HUP": signal.SIGHUP}

    def __init__(self):
        self.by_pid = {}

    def start(self, command, shell_name):
        running = sum(1 for process in self.by_pid.values() if process.running)
        if running >= MAX_RUNNING_PROCESSES:
            raise ProcessError("TooManyProcesses", f"{MAX_RUNNING_PROCESSES} background processes run already; kill one first")
        try:
            process = BackgroundProcess(command, shell_name)
        except OSError as exc:
            raise ProcessError("CommandStartError", str(exc))
        self.by_pid[process.popen.pid] = process
        ended = [pid for pid, kept in self.by_pid.items() if not kept.running]
        for pid in ended[: max(0, len(self.by_pid) - MAX_PROCESSES)]:
            self.by_pid.pop(pid).forget()
        return process.describe()

    def get(self, pid):
        process = self.by_pid.get(pid)
        if process is None:
            raise ProcessError("ProcessNotFound", f"no background process {pid} in this session")
        return process

    def list(self):
        return [process.describe() for process in self.by_pid.values()]

    def output(self, pid, stdout_offset, stderr_offset, max_chars):
        process = self.get(pid)
        # The state first: output read after it is complete when it says the process ended.
        described = process.describe()
        if not described["running"]:
            process.stdout.thread.join(DRAIN_SECONDS)
            process.stderr.thread.join(DRAIN_SECONDS)
        return {"process": described, "stdout": process.stdout.since(stdout_offset, max_chars), "stderr": process.stderr.since(stderr_offset, max_chars)}


def user_frames(tb):
    """Drops the agent's own frames so a traceback starts at the user's code."""
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    return tb


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        # Capture threads send output events while the main thread may send a reply.
        self.sending = threading.Lock()

    def read_message(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, message):
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self.sending:
            self.sock.sendall(line)

    def output_events(self, request_id):
        """What streams a request's output as `output` events, ahead of its reply."""

        def send_output(stream, text):
            try:
                self.send({"id": request_id, "event": "output", "stream": stream, "text": text})
            except OSError:
                pass

        return send_output

    def result_events(self, request_id):
        """What streams a rich result (a display, a shown figure) as a `result` event, ahead of the reply."""

        def send_result(found):
            try:
                self.send({"id": request_id, "event": "result", "result": found})
            except OSError:
                pass

        return send_result

    def image_events(self, request_id):
        """What streams an image shown mid-run as an `image` event, ahead of the reply."""

        def send_image(image):
            try:
                self.send({"id": request_id, "event": "image", "image": image})
            except OSError:
                pass

        return send_image


def streamed(connection, request):
    """The output callback of a request that asked to stream (`"stream": true`), else None."""
    return connection.output_events(request.get("id")) if request.get("stream") is True else None


def streamed_images(connection, request):
    """The image callback of a request that asked to stream, else None."""
    return connection.image_events(request.get("id")) if request.get("stream") is True else None


def streamed_results(connection, request):
    """The rich-result callback of a request that asked to stream, else None."""
    return connection.result_events(request.get("id")) if request.get("stream") is True else None


def handle(interpreter, connection, request):
    op = request.get("op")
    reply = {"id": request.get("id")}
    if op == "ping":
        reply.update(ok=True, executions=interpreter.executions)
    elif op == "execute":
        code = request.get("code")
        max_chars = request.get("maxOutputChars", 4096)
        context_id = request.get("context")
        env = request.get("env", {})
        if not isinstance(code, str) or not isinstance(max_chars, int) or max_chars < 0:
            reply.update(ok=False, error={"code": "BadRequest", "message": "execute needs code (string) and maxOutputChars (int >= 0)"})
        elif not (context_id is None or isinstance(context_id, str)) or not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            reply.update(ok=False, error={"code": "BadRequest", "message": "context must be a string and env map names to strings"})
        else:
            try:
                context = None if context_id is None else interpreter.context(context_id)
            except ContextError as exc:
                reply.update(ok=False, error={"code": exc.code, "message": str(exc)})
            else:
                reply.update(
                    ok=True,
                    **interpreter.execute(
                        code,
                        max_chars,
                        streamed(connection, request),
                        streamed_images(connection, request),
                        context=context,
                        env=env,
                        on_result=streamed_results(connection, request),
                    ),
                )
    elif op == "shell":
        command = request.get("command")
        shell_name = request.get("shell", "bash")
        max_chars = request.get("maxOutputChars", 4096)
        if not isinstance(command, str) or shell_name not in SHELLS or not isinstance(max_chars, int) or max_chars < 0:
            reply.update(ok=False, error={"code": "BadRequest", "message": "shell needs command (string), shell (bash or sh) and maxOutputChars (int >= 0)"})
        else:
            reply.update(ok=True, **interpreter.shell(command, shell_name, max_chars, streamed(connection, request)))
    elif op == "envd.start":
        try:
            reply.update(ok=True, socket=start_envd())
        except OSError as exc:
            reply.update(ok=False, error={"code": "EnvdStartError", "message": str(exc)})
    elif op in CONTEXT_OPS:
        try:
            reply.update(ok=True, **CONTEXT_OPS[op](interpreter, request))
        except ContextError as exc:
            reply.update(ok=False, error={"code": exc.code, "message": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            reply.update(ok=False, error={"code": "BadRequest", "message": f"{op}: {exc}"})
    elif op in PROCESS_OPS:
        try:
            reply.update(ok=True, **PROCESS_OPS[op](interpreter.processes, request))
        except ProcessError as exc:
            reply.update(ok=False, error={"code": exc.code, "message": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            reply.update(ok=False, error={"code": "BadRequest", "message": f"{op}: {exc}"})
    else:
        reply.update(ok=False, error={"code": "UnknownOperation", "message": f"unknown op {op!r}"})
    connection.send(reply)


def _argument(request, name, kind, default=None):
    value = request.get(name, default)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise TypeError(f"{name} must be {kind.__name__}")
    return value


def _offset(request, name):
    value = _argument(request, name, int, 0)
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return value


def _signal(request):
    name = _argument(request, "signal", str, "TERM")
    if name not in Processes.SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(Processes.SIGNALS)}")
    return Processes.SIGNALS[name]


def _shell_name(request):
    name = _argument(request, "shell", str, "bash")
    if name not in SHELLS:
        raise ValueError("shell must be bash or sh")
    return name


def _kill(processes, request):
    process = processes.get(_argument(request, "pid", int))
    process.kill(_signal(request))
    return {"process": process.describe()}


def _write_stdin(processes, request):
    process = processes.get(_argument(request, "pid", int))
    process.write(_argument(request, "text", str, ""), _argument(request, "close", bool, False))
    return {"process": process.describe()}


def _remove_context(interpreter, request):
    interpreter.remove_context(_argument(request, "context", str))
    return {"contexts": interpreter.list_contexts()}


CONTEXT_OPS = {
    "context.create": lambda interpreter, request: {
        "context": interpreter.create_context(_argument(request, "language", str, "python"), _argument(request, "cwd", str, ""))
    },
    "context.list": lambda interpreter, request: {"contexts": interpreter.list_contexts()},
    "context.restart": lambda interpreter, request: {"context": interpreter.restart_context(_argument(request, "context", str))},
    "context.remove": _remove_context,
}


PROCESS_OPS = {
    "process.start": lambda processes, request: {"process": processes.start(_argument(request, "command", str), _shell_name(request))},
    "process.list": lambda processes, request: {"processes": processes.list()},
    "process.output": lambda processes, request: processes.output(
        _argument(request, "pid", int), _offset(request, "stdoutOffset"), _offset(request, "stderrOffset"), _offset(request, "maxChars")
    ),
    "process.stdin": _write_stdin,
    "process.kill": _kill,
}


ENVD_SOCKET = "envd.sock"
_envd_pid = None
_socket_directory = None


def _envd_running():
    if _envd_pid is None:
        return False
    try:
        return os.waitpid(_envd_pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def start_envd():
    """Starts envd.py (E2B's services, for a session reached through E2B's API) beside this agent's
    socket, once; answers the socket's name when it accepts connections. It is forked from this
    process, whose interpreter is loaded already, so it starts in milliseconds rather than the
    quarter second a new interpreter takes under a session's CPU quota."""
    global _envd_pid
    path = os.path.join(_socket_directory, ENVD_SOCKET)
    if not _envd_running():
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                # Nothing of the agent's (its host connection, its listener) stays open in envd.
                os.closerange(3, 1 << 16)
                envd_program.main(path)
            finally:
                os._exit(0)
        _envd_pid = pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return ENVD_SOCKET
        except OSError:
            if not _envd_running():
                raise OSError("envd exited as it started")
            time.sleep(0.002)
        finally:
            probe.close()
    raise OSError("envd did not listen within 10 s")


def prepare_environment():
    sys.meta_path.insert(0, pyplot_show)
    os.environ.setdefault("MPLBACKEND", "Agg")
    mpl_dir = os.path.join(os.environ.get("HOME", "/tmp"), ".config", "matplotlib")
    if "MPLCONFIGDIR" not in os.environ and os.path.isdir(MPL_CACHE_SOURCE):
        os.makedirs(mpl_dir, exist_ok=True)
        for name in os.listdir(MPL_CACHE_SOURCE):
            with open(os.path.join(MPL_CACHE_SOURCE, name), "rb") as src, open(os.path.join(mpl_dir, name), "wb") as dst:
                dst.write(src.read())
        os.environ["MPLCONFIGDIR"] = mpl_dir


def preload():
    """Imports the pool's preload list into sys.modules before the first session request; binds no names."""
    import_modules([name for name in os.environ.pop("SANDPOOL_PRELOAD", "").split(",") if name])


def import_modules(names):
    """Imports each of `names` into sys.modules (the zygote's preload too); a failure ends the process, saying why."""
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - any failure ends the start, saying why
            print(f"sandpool agent: preload of {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(3)


def rehearse():
    """Runs one request through the protocol on a socket pair, as a session's first would, and
    forgets it: a forked agent does this while it waits for its session, so the copy-on-write faults
    of that path are paid before anyone waits on them."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        # It binds a name, which a session would see if it were given the rehearsal's interpreter.
        cell = "rehearsed = 1\nprint(rehearsed)\nrehearsed"
        theirs.sendall(json.dumps({"id": 0, "op": "execute", "code": cell, "maxOutputChars": 100}).encode() + b"\n")
        connection = Connection(ours)
        handle(Interpreter(), connection, connection.read_message())
        theirs.recv(65536)


def serve(socket_path, listening=None):
    """Serves the host on `socket_path`; `listening`, if given, is called once it accepts connections."""
    global _socket_directory
    _socket_directory = os.path.dirname(socket_path)
    prepare_environment()
    preload()
    interpreter = Interpreter()
    # SIGINT raises KeyboardInterrupt in the main thread, which is where user code runs.
    signal.signal(signal.SIGINT, interpreter.on_interrupt)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The host made the socket's directory 0700 for this sandbox's user alone, so the socket needs no
    # chmod; and it is bound at its final name, because gVisor allows neither on a host socket. A host
    # that connects between bind() and listen() is refused and tries again.
    listener.bind(socket_path)
    listener.listen(4)
    if listening is not None:
        listening()
    hello = {"op": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(), "python": sys.version.split()[0]}
    while True:
        sock, _ = listener.accept()
        connection = Connection(sock)
        try:
            connection.send(hello)
            while True:
                request = connection.read_message()
                if request is None:
                    break
                handle(interpreter, connection, request)
        except (OSError, ValueError) as exc:
            print(f"sandpool agent: connection closed: {exc!r}", file=sys.stderr)
        finally:
            sock.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: agent.py SOCKET_PATH", file=sys.stderr)
        sys.exit(2)
    serve(sys.argv[1])
