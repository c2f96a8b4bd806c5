"""Scores Criteo rows through a TF Serving REST API (ours, tensorflow/serving, KServe, Vertex).

    python -m serving.client --input rows.tsv [--format tsv|csv|tfrecord] [--signature raw|examples]
        [--url http://127.0.0.1:8501] [--model rankloss] [--batch-size 256] [--output scores.tsv]

TSV/CSV rows are parsed as the ingestion job parses them (malformed rows are skipped, counted and
reported with their reason); TFRecords (gzip when the name ends in .gz) are sent as they are.
`--signature examples` sends base64 `tf.Example`s to `serving_default`; `raw` sends JSON feature
columns to `serving_raw`. Writes `line<TAB>label<TAB>probability` per scored row.
"""
import argparse
import base64
import http.client
import json
import sys
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from serving import contract
from transforms import features, rows


class ServingError(RuntimeError):
    """A non-2xx answer; the message is the server's `error`."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ServingClient:
    """One keep-alive HTTP connection to a model (use one client per thread)."""

    def __init__(self, url: str = "http://127.0.0.1:8501", model: str = "rankloss",
                 version: Optional[int] = None, timeout: float = 60.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"--url must be http(s)://HOST[:PORT], got {url!r}")
        connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        self._connection = connection_class(parsed.hostname, parsed.port, timeout=timeout)
        self.model_path = f"{parsed.path.rstrip('/')}/v1/models/{model}" + \
            (f"/versions/{version}" if version is not None else "")

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> Dict[str, Any]:
        """One request; a kept-alive connection the server has since closed is reopened and the request
        sent once more (status, metadata and predict change nothing on the server)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()  # reconnects on the next call
                if attempt == 2:
                    raise
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:  # not JSON: a proxy's or another server's plain-text error page
            answer = None
        if response.status >= 300 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise ServingError(response.status, error or payload.decode("utf-8", "replace")[:500])
        return answer

    def status(self) -> Dict[str, Any]:
        return self.request("GET", self.model_path)

    def metadata(self) -> Dict[str, Any]:
        return self.request("GET", self.model_path + "/metadata")

    def predict(self, body: Dict[str, Any]) -> Dict[str, Any]:
        return self.request("POST", self.model_path + ":predict", json.dumps(body).encode("utf-8"))

    def predict_examples(self, serialized: Sequence[bytes]) -> List[float]:
        """Click probabilities of serialized `tf.Example`s (`serving_default`)."""
        instances = [{"b64": base64.b64encode(s).decode("ascii")} for s in serialized]
        return self.predict({"signature_name": contract.DEFAULT_SIGNATURE, "instances": instances})["predictions"]

    def predict_rows(self, rows: Sequence[Dict[str, Any]], explicit_missing: bool = False) -> List[float]:
        """Click probabilities of raw feature rows (`serving_raw`); missing features may be left out.

        `explicit_missing` sends every column (NaN / "" when missing), which tensorflow/serving needs.
        """
        if explicit_missing:
            rows = [{**{k: float("nan") for k in features.NUMERIC_FEATURES},
                     **{k: "" for k in features.CATEGORICAL_FEATURES}, **row} for row in rows]
        return self.predict({"signature_name": contract.RAW_SIGNATURE, "instances": list(rows)})["predictions"]


def read_text_rows(path: str, input_format: str) -> Iterator[Tuple[int, Optional[Tuple[int, Dict[str, Any]]], str]]:
    """(line number, (label, row) or None, reason) for every data line of a Criteo TSV/CSV file."""
    delimiter = rows.delimiter(input_format)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = rows.data_line(number, line.rstrip("\r\n"), delimiter)
            if line is None:
                continue  # the header row
            try:
                yield number, rows.parse_row(line, delimiter), ""
            except rows.RowError as error:
                yield number, None, str(error)


def read_tfrecords(path: str) -> Iterator[Tuple[int, bytes]]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    compression = "GZIP" if path.endswith(".gz") else ""
    for number, record in enumerate(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator(),
                                    start=1):
        yield number, record


def _label_of(serialized: bytes) -> int:
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

    example = example_pb2.Example.FromString(serialized)
    values = example.features.feature[features.LABEL_KEY].int64_list.value
    return int(values[0]) if values else -1


def score(client: ServingClient, args: argparse.Namespace, out) -> Dict[str, int]:
    """Sends the input in batches; returns counts of scored and skipped rows."""
    counts = {"scored": 0, "skipped": 0}
    batch: List[Tuple[int, int, Any]] = []

    def flush() -> None:
        if not batch:
            return
        if args.signature == "raw":
            probabilities = client.predict_rows([row for _, _, row in batch], args.explicit_missing)
        elif args.format == "tfrecord":
            probabilities = client.predict_examples([record for _, _, record in batch])
        else:  # parsed rows, encoded a batch per call: one call costs milliseconds
            probabilities = client.predict_examples(rows.to_examples([(label, row) for _, label, row in batch]))
        for (number, label, _), probability in zip(batch, probabilities):
            out.write(f"{number}\t{label}\t{probability:.6f}\n")
        counts["scored"] += len(batch)
        batch.clear()

    if args.format == "tfrecord":
        if args.signature == "raw":
            raise SystemExit("--signature raw needs TSV/CSV rows; TFRecords go to --signature examples")
        items = ((number, _label_of(record), record) for number, record in read_tfrecords(args.input))
    else:
        def parsed_rows():
            for number, parsed, reason in read_text_rows(args.input, args.format):
                if parsed is None:
                    counts["skipped"] += 1
                    print(f"[client] line {number} skipped: {reason}", file=sys.stderr)
                    continue
                yield number, *parsed
        items = parsed_rows()
    for item in items:
        batch.append(item)
        if len(batch) == args.batch_size:
            flush()
    flush()
    return counts


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="Criteo TSV/CSV file or TFRecord file")
    parser.add_argument("--format", choices=("tsv", "csv", "tfrecord"), default="tsv")
    parser.add_argument("--signature", choices=("raw", "examples"), default="examples")
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--model", default="rankloss")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--explicit-missing", action="store_true",
                        help="send every raw column, NaN / \"\" when missing (tensorflow/serving needs it)")
    parser.add_argument("--output", default="-", help="scores file; - for stdout")
    args = parser.parse_args(argv)
    client = ServingClient(args.url, args.model, args.version)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    try:
        counts = score(client, args, out)
    except ServingError as error:
        raise SystemExit(f"[client] the server refused the request: {error}") from None
    except ConnectionError as error:
        raise SystemExit(f"[client] cannot reach {args.url}: {error}") from None
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"[client] scored {counts['scored']} rows, skipped {counts['skipped']} malformed", file=sys.stderr)


if __name__ == "__main__":
    main()
