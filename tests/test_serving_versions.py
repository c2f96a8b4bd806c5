"""Model versions on the REST server: broken pushes, atomic copies, roll-backs; and the client's errors."""
import shutil
import time

import numpy as np
import pytest

from serving.client import ServingClient, ServingError
from tests.helpers import SERVING_ROWS, copy_in_atomically, http, raw_examples, running_server, versioned

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


@pytest.fixture()
def versioned_server(exported_by_loss, tmp_path):
    """A server polling every 0.3 s over a base path holding one good version (1); its log in a file."""
    base = tmp_path / "models"
    versioned(base, exported_by_loss["bce"], version=1)
    with running_server({"m": base}, tmp_path / "server.log", "--file_system_poll_wait_seconds", "0.3") as url:
        yield url, base, tmp_path / "server.log"


def _states(url):
    return {v["version"]: (v["state"], v["status"]["error_message"])
            for v in http(f"{url}/v1/models/m")[1]["model_version_status"]}


def _wait_for(condition, seconds=60):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)


def test_a_broken_push_never_takes_the_model_down_and_deleting_the_newest_rolls_back(versioned_server):
    url, base, log = versioned_server
    client = ServingClient(url, "m")
    serialized = raw_examples(SERVING_ROWS)
    expected = client.predict_examples(serialized)

    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_text("garbage")            # a broken or half-copied version
    _wait_for(lambda: "2" in _states(url))
    states = _states(url)
    assert states["1"] == ("AVAILABLE", "") and states["2"][0] == "END" and states["2"][1]
    np.testing.assert_allclose(client.predict_examples(serialized), expected, rtol=1e-6)  # version 1 still serves
    assert http(f"{url}/v1/models/m/versions/2")[1]["model_version_status"][0]["state"] == "END"
    time.sleep(1.5)                                                   # several polls later ...
    assert open(log).read().count("version 2 at") == 1              # ... the failure was logged once

    copy_in_atomically(base, 1, 3)                                   # a good push, copied in atomically
    _wait_for(lambda: _states(url).get("3") == ("AVAILABLE", ""))
    assert "1" not in _states(url)                                    # one version served: the newest good one
    np.testing.assert_allclose(client.predict_examples(serialized), expected, rtol=1e-6)

    shutil.rmtree(base / "3")                                         # roll back: delete the newest
    _wait_for(lambda: _states(url).get("1") == ("AVAILABLE", ""))
    assert "3" not in _states(url)
    np.testing.assert_allclose(client.predict_examples(serialized), expected, rtol=1e-6)



def test_the_client_reports_a_plain_text_error_page_instead_of_crashing():
    import http.server
    import threading

    class PlainTextError(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # pylint: disable=invalid-name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"Internal Server Error")

        def log_message(self, *args):
            pass

    stub = http.server.HTTPServer(("127.0.0.1", 0), PlainTextError)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ServingError, match="HTTP 500: Internal Server Error"):
            ServingClient(f"http://127.0.0.1:{stub.server_port}").predict_examples([b""])
    finally:
        stub.shutdown()
