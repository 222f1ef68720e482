"""A web page must not drive cogscope: DNS rebinding, foreign origins, the operator's token, an app behind a reverse
proxy, and log-in guessing.

Each attack is made as a page (or a script) would make it: real HTTP to a `cogscope ui` and to the Phoenix cogscope
starts, with forged Host and Origin headers; the Run button's event posted to Gradio's queue as the page's own
JavaScript posts it; a command that would leave a marker file if it ran.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cogscope.telemetry import PhoenixServer, free_port, phoenix_client, wait_for_trace

from .conftest import CHROMIUM, CHROMIUM_FLAGS, App, SharedApp, running_app
from .reverse_proxy import ReverseProxy

DONE = 'Thought: done.\n<code>\nfinal_answer("rested")\n</code>'
IMPORT_MARKER = """
from pathlib import Path
Path({marker!r}).write_text("imported")
from cogscope.agents.heartbeat import build as make
"""


def _fn_index(app: App, api_name: str) -> tuple[int, int]:
    """(the event's index, how many inputs it takes), from the app's config as the page reads it."""
    config = httpx.get(f"{app}/config", headers=app.headers, timeout=30).json()
    found = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    return int(found["id"]), len(found["inputs"])


def run_form(agent: str, api_base: str, *, mcp: str = "", task: str = "Decide.") -> list[Any]:
    """The Run tab's inputs: agent, model, three role models, API base, options, MCP commands, task."""
    return [agent, "openai/scripted", "", "", "", api_base, "", mcp, task]


def post_to_queue(base: str, headers: dict[str, str], fn: tuple[int, int], data: list[Any]) -> httpx.Response:
    """The Run button's event, posted to Gradio's queue as the page's JavaScript posts it (queue/join); when the app
    takes it, reads the session's event stream until the event completes (its messages: `.stream`). The join's
    answer."""
    index, inputs = fn
    session = uuid.uuid4().hex[:11]
    data = data + [None] * (inputs - len(data))
    body = {"data": data, "event_data": None, "fn_index": index, "session_hash": session}
    joined = httpx.post(f"{base}/gradio_api/queue/join", json=body, headers=headers, timeout=30)
    joined.stream_text = ""  # type: ignore[attr-defined]
    if joined.status_code == 200:
        params = {"session_hash": session}
        with httpx.stream("GET", f"{base}/gradio_api/queue/data", params=params, headers=headers, timeout=180) as s:
            for line in s.iter_lines():
                joined.stream_text += line + "\n"  # type: ignore[attr-defined]
                if line.startswith("data: ") and json.loads(line[6:]).get("msg") == "process_completed":
                    break
    return joined


def refused(response: httpx.Response, status: int, *words: str) -> bool:
    text = response.text
    return response.status_code == status and all(w in text for w in words) and len(text) < 400


# -- 1. DNS rebinding and foreign origins, on the app -------------------------------------------------------------
@pytest.mark.xdist_group("guard-app")  # one app for this test and the next (conftest's shared_app)
def test_a_rebound_page_cannot_run_a_command_on_the_loopback_app(shared_app: SharedApp, tmp_path: Path) -> None:
    """A page whose name now points at 127.0.0.1 posts the Run form with an MCP command: refused, nothing runs."""
    marker = tmp_path / "rebound"
    app, llm = shared_app.app, shared_app.llm
    port = app.rsplit(":", 1)[1]
    fn = _fn_index(app, "run_cycle")
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    attack = run_form("heartbeat", llm.api_base, mcp=f'sh -c "touch {marker}"')
    joined = post_to_queue(app, evil, fn, attack)
    assert not marker.exists(), "the page's MCP command ran as the operator"
    assert refused(joined, 403, f"evil.example:{port}", "--public-url"), (joined.status_code, joined.text[:300])
    # the same page, even with the operator's token (a page cannot have it: it is another site's cookie)
    for headers in ({"Host": f"evil.example:{port}"}, {**evil, **app.headers}):
        page = httpx.get(f"{app}/", headers=headers, timeout=30)
        assert refused(page, 403, "this app is served as", "--public-url"), (page.status_code, page.text[:300])
        assert refused(httpx.get(f"{app}/config", headers=headers, timeout=30), 403)

    # a foreign Origin with a loopback Host (another site posting to 127.0.0.1 directly): refused too
    for origin in ("http://evil.example", f"http://127.0.0.1:{free_port()}", "null"):
        joined = post_to_queue(app, {"Origin": origin, **app.headers}, fn, attack)
        assert refused(joined, 403, "origin"), (origin, joined.status_code, joined.text[:300])
        read = httpx.get(f"{app}/config", headers={"Origin": origin, **app.headers}, timeout=30)
        assert refused(read, 403, "origin")  # Gradio's CORS header may come along: on a refusal, nothing to read
    assert not marker.exists()

    # the app's own page, by every loopback name, on any port (an ssh tunnel): served
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2:9999", f"[::1]:{port}"):
        headers = {"Host": host, "Origin": f"http://{host}", **app.headers}
        assert httpx.get(f"{app}/config", headers=headers, timeout=30).status_code == 200, host
    llm.enqueue(DONE)
    own = {"Origin": f"http://127.0.0.1:{port}", **app.headers}
    assert post_to_queue(app, own, fn, run_form("heartbeat", llm.api_base)).status_code == 200
    assert llm.remaining == 0  # the app's own page ran its cycle


# -- 2. the operator's token ------------------------------------------------------------------------------------
@pytest.mark.xdist_group("guard-app")
def test_the_loopback_app_needs_the_printed_link_and_the_link_is_all_it_needs(
    shared_app: SharedApp, tmp_path: Path, phoenix: PhoenixServer
) -> None:
    marker = tmp_path / "imported"
    agent_file = tmp_path / "mine.py"
    agent_file.write_text(IMPORT_MARKER.format(marker=str(marker)))
    app, llm = shared_app.app, shared_app.llm
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_\-]{32,}", app.link), app.link
    log = Path(shared_app.env["COGSCOPE_DATA_DIR"]).parent / "ui.log"
    fn = _fn_index(app, "run_cycle")

    # without the token: every route refuses, and an agent file is never imported
    for path in ("/", "/config", "/gradio_api/info", f"/?token={'x' * 43}", "/gradio_api/file=/etc/passwd"):
        answer = httpx.get(app + path, timeout=30)
        assert refused(answer, 401, "printed"), (path, answer.status_code, answer.text[:300])
        assert "root:" not in answer.text
    joined = post_to_queue(app, {}, fn, run_form(f"{agent_file}:make", llm.api_base))
    assert refused(joined, 401, "printed") and not marker.exists()

    # the printed link: a cookie (HttpOnly, SameSite=Strict, not the token itself) and the clean URL
    with httpx.Client(base_url=app, timeout=60) as browser:
        opened = browser.get(app.link.removeprefix(app))
        assert opened.status_code in (302, 303) and opened.headers["location"] == "/", opened.status_code
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and app.token not in cookie, cookie
        assert browser.get("/").status_code == 200
        llm.enqueue(DONE)
        joined = post_to_queue(app, {"Cookie": opened.headers["set-cookie"].split(";")[0]}, fn,
                               run_form(f"{agent_file}:make", llm.api_base))  # fmt: skip
        assert joined.status_code == 200 and marker.read_text() == "imported"  # the operator's power
    assert llm.remaining == 0
    trace_id = re.search(r"Trace `([0-9a-f]{32})`", joined.stream_text).group(1)  # type: ignore[attr-defined]
    spans = wait_for_trace(
        phoenix_client(phoenix.url), project=shared_app.project, trace_id=trace_id, min_spans=4, timeout=30
    )
    assert len(spans) >= 4 and app.token not in spans.to_json(date_format="iso")

    # in Chromium: the link opens the app on its clean URL; a browser without it is told what to do
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        mine = chromium.new_context()
        page = mine.new_page()
        page.goto(app.link)
        page.locator("#run-button").wait_for(timeout=60_000)
        assert page.url == app + "/" and app.token not in page.content()
        again = mine.new_page()  # another tab of the same browser: its cookie is sent
        again.goto(app)
        again.locator("#run-button").wait_for(timeout=60_000)
        other = chromium.new_context().new_page()  # another browser profile: no cookie
        other.goto(app)
        assert "open the link cogscope printed" in other.inner_text("body")
        chromium.close()
    token_lines = [line for line in log.read_text().splitlines() if app.token in line]
    assert len(token_lines) == 1 and token_lines[0].startswith("cogscope: http://127.0.0.1:"), token_lines


# -- 3. the Phoenix cogscope starts ------------------------------------------------------------------------------
def test_the_phoenix_cogscope_starts_refuses_a_foreign_host_and_origin(phoenix: PhoenixServer):
    port = phoenix.url.rsplit(":", 1)[1]
    query = {"query": "{ projects { edges { node { name } } } }"}
    evil = {"Host": f"evil.example:{port}"}
    attempts = [
        ("POST", "/graphql", {"json": query}),
        ("GET", "/graphql", {}),
        ("GET", "/v1/projects", {}),
        ("GET", "/v1/traces", {}),
        ("POST", "/v1/traces", {"content": b"", "headers": {"Content-Type": "application/x-protobuf"}}),
        ("GET", "/", {}),
    ]
    for method, path, kwargs in attempts:
        headers = {**evil, **kwargs.pop("headers", {})}
        answer = httpx.request(method, phoenix.url + path, headers=headers, timeout=30, **kwargs)
        assert refused(answer, 403, "evil.example"), (method, path, answer.status_code, answer.text[:200])
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        answer = httpx.post(phoenix.url + "/graphql", json=query, headers={"Origin": origin}, timeout=30)
        assert refused(answer, 403, "origin"), (origin, answer.status_code, answer.text[:200])
    # Phoenix's own page and cogscope's exporters (no Origin, Host 127.0.0.1:PORT): served
    assert httpx.post(phoenix.url + "/graphql", json=query, timeout=30).json()["data"]["projects"]
    same = {"Origin": phoenix.url}
    assert httpx.post(phoenix.url + "/graphql", json=query, headers=same, timeout=30).status_code == 200
    assert httpx.get(phoenix.url + "/", headers={"Host": f"localhost:{port}"}, timeout=30).status_code == 200


@pytest.mark.e2e  # starts a Phoenix, to see it refused
def test_a_phoenix_that_cannot_be_guarded_is_not_started(tmp_path, monkeypatch):
    """A Phoenix release that no longer reads the setting cogscope guards it through: one line, and no Phoenix."""
    from cogscope.telemetry import phoenix_server
    from cogscope.telemetry.errors import PhoenixStartFailed
    from cogscope.telemetry.phoenix_server import ensure_phoenix, port_in_use

    monkeypatch.setattr(phoenix_server, "PHOENIX_MIDDLEWARE_ENV", "PHOENIX_NO_SUCH_SETTING")
    port = free_port()
    with pytest.raises(PhoenixStartFailed) as caught:
        ensure_phoenix(working_dir=tmp_path / "phoenix", port=port)
    line = str(caught.value)
    assert "answers requests for any host name" in line and "PHOENIX_COLLECTOR_ENDPOINT" in line, line
    assert "\n" not in line
    assert not port_in_use("127.0.0.1", port)


# -- 4. behind a reverse proxy ---------------------------------------------------------------------------------------
def test_behind_a_reverse_proxy_the_public_name_is_served_with_log_ins_and_nothing_else(env, llm, tmp_path, cogscope):
    logins = tmp_path / "logins.txt"
    logins.write_text("ana:ana-password-1\n")
    logins.chmod(0o600)
    port = str(free_port())
    refused_start = cogscope("ui", "--port", port, "--public-url", "https://cogscope.example.com", timeout=60)
    assert "--public-url" in refused_start.error_line() and "--auth-file" in refused_start.err
    bad = cogscope("ui", "--port", port, "--public-url", "cogscope.example.com", timeout=60)
    assert "is not a URL" in bad.error_line()

    proxy_port = free_port()
    public = f"http://cogscope.test:{proxy_port}"
    with running_app(env, llm, "--auth-file", str(logins), "--public-url", public) as app:
        assert f"cogscope: {public}/" in (Path(env["COGSCOPE_DATA_DIR"]).parent / "ui.log").read_text()
        with ReverseProxy(app, proxy_port), httpx.Client(base_url=f"http://127.0.0.1:{proxy_port}", timeout=60) as web:
            browser = {"Host": f"cogscope.test:{proxy_port}", "Origin": public}
            assert web.get("/", headers=browser).status_code == 200  # the log-in page
            assert web.get("/config", headers=browser).status_code == 401
            form = {"username": "ana", "password": "ana-password-1"}
            assert web.post("/login", data=form, headers=browser).status_code == 200
            fn = _fn_index_via(web, browser)

            def run(agent: str) -> str:
                llm.enqueue(DONE)
                posted = web.post("/gradio_api/call/run_cycle", json={"data": run_form(agent, llm.api_base)},
                                  headers=browser)  # fmt: skip
                assert posted.status_code == 200, posted.text[:300]
                return web.get(f"/gradio_api/call/run_cycle/{posted.json()['event_id']}", headers=browser).text

            assert "Cycle finished" in run("heartbeat")  # events stream through the proxy
            # everyone comes through the proxy from loopback: a logged-in user is a remote user, not the operator
            assert "is not registered; on a shared cogscope only registered agents run" in run("os:system")
            llm.reset()

            for headers in ({"Host": f"evil.example:{proxy_port}"}, {**browser, "Host": "evil.example"}):
                answer = web.get("/", headers=headers)
                assert refused(answer, 403, "evil.example", "--public-url"), (answer.status_code, answer.text)
            for origin in ("http://evil.example", f"https://cogscope.test:{proxy_port}", "null"):
                joined = web.post("/gradio_api/queue/join", headers={**browser, "Origin": origin},
                                  json={"data": [], "fn_index": fn, "session_hash": "x"})  # fmt: skip
                assert refused(joined, 403, "origin"), (origin, joined.status_code, joined.text)


def _fn_index_via(web: httpx.Client, headers: dict[str, str]) -> int:
    config = web.get("/config", headers=headers).json()
    return int(next(d for d in config["dependencies"] if d.get("api_name") == "run_cycle")["id"])


# -- 5. guessing passwords ------------------------------------------------------------------------------------------
def test_forty_wrong_passwords_lock_the_user_out_for_a_while(env, llm, tmp_path):
    logins = tmp_path / "logins.txt"
    logins.write_text("ana:ana-password-1\nbo:bo-password-22\n")
    logins.chmod(0o600)
    with running_app(env, llm, "--auth-file", str(logins)) as app:
        answers = [
            httpx.post(f"{app}/login", data={"username": "ana", "password": f"guess-{n}"}, timeout=30)
            for n in range(40)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}, codes
        assert re.search(r"too many failed log-ins; wait \d+ s", answers[-1].text), answers[-1].text
        right = httpx.post(f"{app}/login", data={"username": "ana", "password": "ana-password-1"}, timeout=30)
        assert right.status_code == 429 and "access-token" not in right.headers.get("set-cookie", "")


def test_the_log_in_limit_counts_per_user_and_per_address_and_ends_after_its_window():
    from cogscope.ui.auth import LoginLimit

    now = [1000.0]
    limit = LoginLimit(per_user=5, per_address=20, window_s=300.0, clock=lambda: now[0])
    for n in range(5):
        assert limit.wait("ana", "10.0.0.1") == 0.0, n
        limit.failed("ana", "10.0.0.1")
    assert limit.wait("ana", "10.0.0.9") == pytest.approx(300.0)  # the user, from anywhere
    assert limit.wait("bo", "10.0.0.1") == 0.0  # another user from the same address: 15 tries left
    for n in range(15):
        limit.failed(f"user{n}", "10.0.0.1")
    assert limit.wait("bo", "10.0.0.1") > 0  # the address: 20 failures in the window
    assert limit.wait("bo", "10.0.0.2") == 0.0
    now[0] += 301.0
    assert limit.wait("ana", "10.0.0.1") == 0.0  # the window has passed
    limit.failed("ana", "10.0.0.1")
    limit.succeeded("ana")
    assert limit.wait("ana", "10.0.0.3") == 0.0
