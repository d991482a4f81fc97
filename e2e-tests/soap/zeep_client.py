"""A real SOAP client of ETX Hub, configured only from the published WSDL (R-ING-3).

Driven by e2e-tests/tests/e2e/soap_zeep.rs: loads the WSDL over HTTPS without an API key
(it is public), trusting exactly the hub's certificate, then for SOAP 1.1 and SOAP 1.2 in
turn calls SubmitRecords, GetReceipt, SubmitBatch and GetBatchStatus with the API key in the
X-API-Key header, and submits an invalid record expecting a zeep Fault. Prints one JSON
object on stdout for the Rust test to assert on; exits non-zero on any unexpected error.

    python zeep_client.py --wsdl https://127.0.0.1:8443/soap/v1/ingestion?wsdl \
        --cafile data/tls/cert.pem --key etx_... --other-key etx_...
"""

import argparse
import json
import ssl
import sys
import time

import requests
import zeep
from lxml import etree
from zeep.helpers import serialize_object
from zeep.transports import Transport

NS = "urn:etxhub:soap:ingestion:v1"
PORTS = {"1.1": "IngestionSoap11Port", "1.2": "IngestionSoap12Port"}


class HubCertificate(requests.adapters.HTTPAdapter):
    """Trusts exactly the hub's certificate file, verifying chain and host name.

    urllib3 2 always sets OpenSSL's X509_STRICT flag, which refuses the hub's generated
    self-signed certificate (it carries no Basic Constraints extension); Python's own default
    context (as curl) accepts it, so that context is used.
    """

    def __init__(self, cafile):
        self.context = ssl.create_default_context(cafile=cafile)
        self.context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self.context
        return super().init_poolmanager(*args, **kwargs)


def session_for(cafile):
    s = requests.Session()
    s.mount("https://", HubCertificate(cafile))
    return s


def el(name, text=None, *children):
    """A payload element (payload fields are xs:any, so they are written as XML)."""
    e = etree.Element(name)
    if text is not None:
        e.text = text
    for c in children:
        e.append(c)
    return e


def record(value, note, key=None):
    payload = [
        el("indicator", "transaction_count"),
        el("transaction_kind", "e_invoice"),
        el("value", value),
        el("unit", "count"),
        el("dimensions", None, el("province_code", "79")),
        el("note", note),
    ]
    r = {
        "category": "statistics",
        "schema_version": "1",
        "period": "2026-10",
        "classification": "internal",
        "priority": "normal",
        "form": "raw",
        "payload": {"_value_1": payload},
    }
    if key is not None:
        r["idempotency_key"] = key
    return r


def plain(obj):
    """zeep objects as JSON-friendly values."""
    return json.loads(json.dumps(serialize_object(obj, dict), default=str))


def fault_info(f):
    """Code, title and violations from a zeep Fault's detail (tns:Error)."""
    error = f.detail.find(f"{{{NS}}}Error") if f.detail is not None else None
    out = {"soap_code": f.code, "message": f.message, "subcodes": [str(s) for s in (f.subcodes or [])]}
    if error is not None:
        out["code"] = error.findtext(f"{{{NS}}}code")
        out["title"] = error.findtext(f"{{{NS}}}title")
        out["violations"] = [
            {
                "item": v.findtext(f"{{{NS}}}item"),
                "path": v.findtext(f"{{{NS}}}path"),
                "code": v.findtext(f"{{{NS}}}code"),
                "message": v.findtext(f"{{{NS}}}message"),
            }
            for v in error.iter(f"{{{NS}}}violation")
        ]
    return out


def run(client, version, other):
    service = client.bind("IngestionService", PORTS[version])
    out = {}

    receipt = service.SubmitRecords(
        idempotency_key=f"zeep-{version}",
        records={"record": [record("1250", f"zeep {version} — một"), record("97.5", f"zeep {version} — hai")]},
    )
    out["receipt"] = plain(receipt)
    out["read_back"] = plain(service.GetReceipt(receipt_id=receipt.receipt_id))
    out["replay"] = plain(
        service.SubmitRecords(
            idempotency_key=f"zeep-{version}",
            records={"record": [record("1250", f"zeep {version} — một"), record("97.5", f"zeep {version} — hai")]},
        )
    )

    try:
        service.SubmitRecords(records={"record": [record("nhiều", "sai kiểu")]})
        out["invalid"] = {"error": "no fault raised"}
    except zeep.exceptions.Fault as f:
        out["invalid"] = fault_info(f)

    try:
        other.bind("IngestionService", PORTS[version]).GetReceipt(receipt_id=receipt.receipt_id)
        out["foreign"] = {"error": "no fault raised"}
    except zeep.exceptions.Fault as f:
        out["foreign"] = fault_info(f)

    rows = "".join(f"transaction_count,e_invoice,{i * 7},count,79,zeep {version} dòng {i}\n" for i in range(1, 4))
    csv = ("indicator,transaction_kind,value,unit,dimensions.province_code,note\n" + rows).encode("utf-8")
    submitted = service.SubmitBatch(
        format="csv",
        file=csv,
        defaults={"category": "statistics", "schema_version": "1", "period": "2026-10", "classification": "internal"},
        control_totals={"row_count": 3},
        dry_run=False,
    )
    out["batch_submitted"] = plain(submitted)
    batch_id = submitted.batch.batch_id
    status = None
    for _ in range(300):
        status = service.GetBatchStatus(batch_id=batch_id)
        if status.state in ("completed", "rejected", "failed"):
            break
        time.sleep(0.1)
    out["batch_status"] = plain(status)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsdl", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--other-key", required=True)
    args = ap.parse_args()

    def client(key):
        session = session_for(args.cafile)
        c = zeep.Client(args.wsdl, transport=Transport(session=session, timeout=30, operation_timeout=60))
        # The WSDL was read without a key; the operations need one.
        session.headers["X-API-Key"] = key
        return c

    mine = client(args.key)
    other = client(args.other_key)
    result = {
        "zeep": zeep.__version__,
        "operations": sorted(mine.service._binding._operations.keys()),
        "versions": {v: run(mine, v, other) for v in PORTS},
    }

    # A call without a key is refused with a fault too.
    keyless = session_for(args.cafile)
    anonymous = zeep.Client(args.wsdl, transport=Transport(session=keyless))
    try:
        anonymous.service.GetReceipt(receipt_id="00000000-0000-0000-0000-000000000000")
        result["anonymous"] = {"error": "no fault raised"}
    except zeep.exceptions.Fault as f:
        result["anonymous"] = fault_info(f)

    json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
