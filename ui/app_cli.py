"""`cogscope ui` (the default command): Phoenix, the local model and the browser app, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any

from cogscope import agents, defaults
from cogscope.defaults import EXIT_OK

from .config import Settings
from .errors import UsageError
from .interrupts import set_later


# -- cogscope ui -----------------------------------------------------------------------
def _preload() -> None:
    from .models import preload

    try:
        preload()
        agents.get(agents.names()[0])  # loads the built-ins (and smolagents' agent classes)
    except Exception:  # a broken install shows itself, with its one line, on the first Run instead
        pass


@dataclass(frozen=True)
class AppAccess:
    """Who may reach the app and do what (ui.web_access, ui.auth, ui.trust)."""

    host: str
    port: int
    policy: Any  # ui.trust.Policy
    credentials: Any  # ui.auth.Credentials, or None: no log-in (loopback only)
    token: Any  # ui.web_access.OperatorToken, or None when people log in
    middleware: list[Any]  # the app's Starlette middleware
    public_url: str | None  # the address people open behind a reverse proxy


def _app_access(args: argparse.Namespace, settings: Settings, host: str, port: int) -> AppAccess:
    """Who may reach the app and do what; UsageError for a set-up that would let anyone in."""
    from starlette.middleware import Middleware

    from .auth import LimitLogins, RequireLogin, load_credentials
    from .headers import ContentSecurityPolicy
    from .trust import Policy, is_loopback
    from .web_access import OperatorToken, app_middleware, check_public_url

    public_url = check_public_url(getattr(args, "public_url", None) or settings.public_url)
    credentials = load_credentials(file=getattr(args, "auth_file", None), env_var=getattr(args, "auth_env", None))
    if not is_loopback(host) and credentials is None:
        raise UsageError(
            f"--host {host} would let anyone on the network run agents as you; give log-ins with "
            "--auth-file FILE (one user:password per line) or --auth-env VAR, or bind 127.0.0.1"
        )
    if public_url and credentials is None:
        raise UsageError(
            f"--public-url {public_url}: behind a reverse proxy everyone reaches cogscope from loopback, so it asks "
            "for log-ins; give them with --auth-file FILE (one user:password per line) or --auth-env VAR"
        )
    policy = Policy.for_app(
        host=host,
        public_url=public_url,
        allow_commands=getattr(args, "allow_browser_commands", False),
        allowed_mcp=[*settings.allowed_mcp, *getattr(args, "allow_mcp", [])],
        allowed_api_bases=[b for b in [settings.api_base, *getattr(args, "allow_api_base", [])] if b],
    )
    token = OperatorToken(port) if credentials is None else None
    middleware = app_middleware(host=host, port=port, public_url=public_url, token=token)
    if credentials is not None:
        middleware += [Middleware(LimitLogins), Middleware(RequireLogin)]
    middleware.append(Middleware(ContentSecurityPolicy))
    return AppAccess(host, port, policy, credentials, token, middleware, public_url)


def _launch(runtime: Any, access: AppAccess) -> Any:
    """Build the app and start serving it (returns at once); the Gradio Blocks."""
    from .app import build_app
    from .config import LOCAL_MODEL
    from .run_tab import cycle_events_limit

    if runtime.settings.model == LOCAL_MODEL:
        print("Starting the bundled local model (SmolLM2-135M) ...", flush=True)
        runtime.local.ensure()
    demo = build_app(runtime)
    # every other event (the Traces tab, replays, the Dashboard) has a group of its own, so another user's
    # running cycle never blocks it; each event holds a worker thread while it runs
    demo.queue(default_concurrency_limit=16)
    credentials = access.credentials
    demo.launch(
        max_threads=cycle_events_limit(runtime) + 40,
        server_name=access.host,
        server_port=access.port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        auth=credentials.check if credentials else None,
        app_kwargs={"middleware": access.middleware},
        auth_message="cogscope: log in with the user and password the operator gave you",
        max_file_size=f"{defaults.BUNDLE_MAX_MB}mb",  # the only upload: a bundle (ui.bundle_panel)
    )
    return demo


def _say_up(runtime: Any, access: AppAccess) -> None:
    """The lines that say the app is up: Phoenix, the app's address (with the operator's token), who may log in."""
    print(f"Phoenix:  {runtime.phoenix.url}" + ("" if runtime.phoenix.started_here else " (reused)"))
    token, policy, credentials = access.token, access.policy, access.credentials
    shown = access.public_url + "/" if access.public_url else f"http://{access.host}:{access.port}"
    print(f"cogscope: {token.link(shown) if token else shown}   (Ctrl-C stops what cogscope started)", flush=True)
    if not policy.operator:
        print(
            f"Log-in required ({len(credentials.users) if credentials else 0} user(s)); users may run "
            + (
                "any agent file and MCP command (--allow-browser-commands)."
                if policy.allow_commands
                else "registered agents and allowed MCP servers only."
            ),
            flush=True,
        )


def ui_command(args: argparse.Namespace, settings: Settings) -> int:
    from .runtime import Runtime

    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    access = _app_access(args, settings, host, port)
    if getattr(args, "max_cycles", None):
        settings = replace(settings, max_cycles=args.max_cycles)
    from .cycle_state import prune_line
    from .user_state import prune_line as prune_agent_states

    pruned = prune_line(None, settings.state_days)  # the data dir's memory store: the one the app's agents use
    for line in (pruned, prune_agent_states(settings.state_days)):  # and the kept states of users' own agents
        if line:
            print(line, flush=True)
    runtime = Runtime.start(settings)
    runtime.policy = access.policy
    runtime.signed_in = access.credentials is not None
    stop = threading.Event()
    demo = None
    try:
        demo = _launch(runtime, access)
        # the first Run would otherwise import LiteLLM and the built-in agents itself: do it while nobody waits
        threading.Thread(target=_preload, name="cogscope-preload", daemon=True).start()
        # explicit handlers, set before we say we are up: a Ctrl-C right after that line must not land as a
        # KeyboardInterrupt that Python may swallow (inside a weakref callback); and a shell that starts cogscope
        # in the background sets SIGINT to "ignore"
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: set_later(stop))
        _say_up(runtime, access)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping ...", flush=True)
        _end_anyway_after(runtime.settings.drain_timeout + STOP_GRACE_S)
        if demo is not None:
            demo.close()
        runtime.close()
    return EXIT_OK


STOP_GRACE_S = 15.0  # past the spool's drain: Gradio's server (up to 5 s) and what cogscope started


def _end_anyway_after(seconds: float) -> None:
    """Stopping must end: if the app is still here `seconds` from now (a Phoenix too busy to answer the last
    sends, a request handler or a thread that does not return), say so and end the process. Nothing is lost:
    spans not yet in Phoenix stay in the spool for the next cogscope on this data dir, and the Phoenix and the
    model server cogscope started end with it (they die with their parent)."""

    def end() -> None:
        print(
            f"cogscope: stopping took more than {seconds:g} s; ending now (spans not yet in Phoenix stay in the "
            "spool and are sent by the next cogscope on this data dir)",
            file=sys.stderr,
            flush=True,
        )
        agents.exit_now(EXIT_OK)

    timer = threading.Timer(seconds, end)
    timer.daemon = True  # runs on while Python waits for other threads at exit
    timer.start()
