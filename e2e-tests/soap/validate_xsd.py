"""Validates XML records against the published XSDs with libxml2, through lxml (R-ING-3).

Driven by e2e-tests/tests/e2e/xsd_lxml.rs. Loads every contracts/schemas/<category>/v<n>.xsd
(so libxml2 must accept each one as an XSD 1.0 schema), then checks that:

- every contracts/examples/records/**/*.xml validates against the XSD of the category and
  schema version its records carry ("strict" mode);
- every contracts/examples/batches/*.xml validates against that XSD with the envelope elements
  made optional and no limit on the number of records ("batch" mode): a batch file may leave
  the envelope to the upload's defaults. Its category is the one its records carry or else the
  first dash-separated part of its file name; its version the one its records carry, else 1;
- variants of the examples that the hub accepts (elements in another order, whitespace around
  envelope codes, optional fields left out, empty arrays and objects, 1,000 records) validate;
- deliberately invalid documents do not.

Prints one JSON report on stdout; exits 1 when any check fails, 2 on a usage error.

    python validate_xsd.py --root /path/to/workspace
"""

import argparse
import copy
import json
import pathlib
import sys

from lxml import etree

NS = "urn:etxhub:ingestion:v1"
M = {"etx": NS}
XSN = {"xs": "http://www.w3.org/2001/XMLSchema"}
CATEGORIES = ("policy", "statistics", "workforce", "enforcement")

STATS = "contracts/examples/records/statistics/02-failed-public-services-hanoi.xml"
POLICY = "contracts/examples/records/policy/01-law-on-electronic-transactions.xml"
WORKFORCE = "contracts/examples/records/workforce/02-expert-registry.xml"
ENFORCEMENT = "contracts/examples/records/enforcement/03-payment-gateway-ddos.xml"

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def q(name):
    return f"{{{NS}}}{name}"


def first(tree, path):
    found = tree.xpath(path, namespaces=M)
    if not found:
        raise LookupError(f"nothing at {path}")
    return found[0]


# --- Mutations: each takes the parsed document and changes it in place ----------------------


def set_text(path, text):
    def mutate(tree):
        first(tree, path).text = text

    return mutate


def remove(path):
    def mutate(tree):
        for el in tree.xpath(path, namespaces=M):
            el.getparent().remove(el)

    return mutate


def add(path, name, text):
    def mutate(tree):
        etree.SubElement(first(tree, path), q(name)).text = text

    return mutate


def duplicate(path):
    def mutate(tree):
        el = first(tree, path)
        el.addnext(copy.deepcopy(el))

    return mutate


def rename(path, name):
    def mutate(tree):
        first(tree, path).tag = q(name)

    return mutate


def items(path, count):
    def mutate(tree):
        parent = first(tree, path)
        template = parent[0]
        for el in list(parent):
            parent.remove(el)
        for i in range(count):
            item = copy.deepcopy(template)
            item.text = f"chủ đề {i}"
            parent.append(item)

    return mutate


def records(count):
    def mutate(tree):
        root = tree.getroot()
        template = root[0]
        for el in list(root):
            root.remove(el)
        for _ in range(count):
            root.append(copy.deepcopy(template))

    return mutate


def strip_namespace(tree):
    for el in tree.getroot().iter():
        if isinstance(el.tag, str):
            el.tag = etree.QName(el).localname
    etree.cleanup_namespaces(tree)


def reverse_children(tree):
    for el in tree.getroot().iter():
        children = [c for c in el if isinstance(c.tag, str)]
        if len(children) > 1:
            for c in children:
                el.remove(c)
            for c in reversed(children):
                el.append(c)


def pad_envelope(tree):
    for name in ("category", "schema_version", "period", "classification", "priority", "form"):
        for el in tree.xpath(f"//etx:record/etx:{name}", namespaces=M):
            el.text = f"\n  {el.text}\t"
    for el in tree.xpath("//etx:record/etx:schema_version", namespaces=M):
        el.text = " V1 "


def empty_containers(tree):
    for name in ("failure_reasons", "dimensions"):
        el = first(tree, f"//etx:payload/etx:{name}")
        for child in list(el):
            el.remove(child)
        el.text = "\n      "


def text_in(path, text):
    def mutate(tree):
        el = first(tree, path)
        if len(el):
            el[0].tail = text
        else:
            el.text = text

    return mutate


VARIANTS = [
    ("elements in reverse order", STATS, reverse_children),
    ("elements in reverse order, single record", ENFORCEMENT, reverse_children),
    ("whitespace around envelope codes and V1", STATS, pad_envelope),
    (
        "optional fields left out",
        STATS,
        remove(
            "//etx:record/etx:priority | //etx:record/etx:form | //etx:record/etx:idempotency_key"
            " | //etx:payload/etx:dimensions | //etx:payload/etx:failure_reasons"
            " | //etx:payload/etx:note | //etx:payload/etx:source_type"
        ),
    ),
    ("empty array and empty object", STATS, empty_containers),
    ("1000 records", STATS, records(1000)),
    ("50 topics", POLICY, items("//etx:payload/etx:topics", 50)),
]

INVALID = [
    # envelope
    ("category of another schema", STATS, set_text("//etx:record/etx:category", "policy")),
    ("state-secret classification (Tối mật)", STATS, set_text("//etx:record/etx:classification", "Tối mật")),
    ("state-secret classification (state_secret)", POLICY, set_text("//etx:record/etx:classification", "state_secret")),
    ("another schema version", STATS, set_text("//etx:record/etx:schema_version", "2")),
    ("period with month 13", STATS, set_text("//etx:record/etx:period", "2026-13")),
    ("priority outside the list", STATS, set_text("//etx:record/etx:priority", "urgent")),
    ("idempotency key with a space", STATS, set_text("//etx:record/etx:idempotency_key", "k 1")),
    ("idempotency key of 129 characters", STATS, set_text("//etx:record/etx:idempotency_key", "k" * 129)),
    ("payload missing", POLICY, remove("//etx:payload")),
    ("classification missing", POLICY, remove("//etx:record/etx:classification")),
    ("unknown envelope element", POLICY, add("//etx:record", "source", "x")),
    ("envelope element repeated", POLICY, duplicate("//etx:record/etx:period")),
    # document
    # The hub also reads unqualified documents: an approximation of the XSD (see src/xsd.rs).
    ("no namespace", STATS, strip_namespace),
    ("no records", STATS, records(0)),
    ("1001 records", STATS, records(1001)),
    ("text inside records", STATS, text_in("/etx:records", "stray text")),
    ("wrong root element", STATS, rename("/etx:records", "batch")),
    # payload
    ("unknown payload field", STATS, add("//etx:payload", "colour", "red")),
    ("required payload field missing", STATS, remove("//etx:payload/etx:unit")),
    ("enum value outside the list", STATS, set_text("//etx:payload/etx:unit", "pieces")),
    ("enum value with surrounding spaces", STATS, set_text("//etx:payload/etx:unit", " count ")),
    ("negative number", STATS, set_text("//etx:payload/etx:value", "-0.5")),
    ("number above the maximum", STATS, set_text("//etx:payload/etx:value", "1000000000000000001")),
    ("value not a number", STATS, set_text("//etx:payload/etx:value", "2.450 tỷ")),
    ("province code of one digit", STATS, set_text("//etx:dimensions/etx:province_code", "5")),
    ("unknown field in a nested object", STATS, add("//etx:payload/etx:dimensions", "city", "Hà Nội")),
    ("text beside child elements", STATS, text_in("//etx:payload/etx:dimensions", "Hà Nội")),
    ("array item with a negative count", STATS, set_text("(//etx:failure_reasons/etx:item/etx:count)[1]", "-1")),
    ("array child not named item", STATS, rename("//etx:failure_reasons/etx:item", "reason")),
    ("array item missing a required field", STATS, remove("(//etx:failure_reasons/etx:item)[1]/etx:reason_code")),
    ("code with upper-case letters", STATS, set_text("//etx:dimensions/etx:sector", "Public_Administration")),
    ("payload field repeated", POLICY, duplicate("//etx:payload/etx:title")),
    ("51 topics (maxItems 50)", POLICY, items("//etx:payload/etx:topics", 51)),
    ("topic longer than 100 characters", POLICY, set_text("(//etx:topics/etx:item)[1]", "x" * 101)),
    ("empty required string", POLICY, set_text("//etx:payload/etx:title", "")),
    ("date written dd/mm/yyyy", POLICY, set_text("//etx:payload/etx:issued_on", "22/06/2023")),
    ("date with month 13", POLICY, set_text("//etx:payload/etx:issued_on", "2023-13-01")),
    ("url not https", POLICY, set_text("//etx:payload/etx:url", "http://vanban.chinhphu.vn/")),
    ("url with a space", POLICY, set_text("//etx:payload/etx:url", "https://vanban chinhphu.vn/")),
    ("url with a no-break space", POLICY, set_text("//etx:payload/etx:url", "https://vanban\u00a0chinhphu.vn/")),
    ("document number with a semicolon", POLICY, set_text("(//etx:replaces/etx:item)[1]", "51/2005;QH11")),
    ("status outside the list", POLICY, set_text("//etx:payload/etx:status", "active")),
    ("citizen id of 11 digits", WORKFORCE, set_text("//etx:expert/etx:citizen_id", "07919000012")),
    ("phone number not Vietnamese", WORKFORCE, set_text("//etx:expert/etx:phone", "12345")),
    ("e-mail address without domain", WORKFORCE, set_text("//etx:expert/etx:email", "thu.nguyen@")),
    ("years of experience above 70", WORKFORCE, set_text("//etx:expert/etx:years_of_experience", "71")),
    ("integer written as a decimal", WORKFORCE, set_text("//etx:expert/etx:years_of_experience", "12.5")),
    ("required nested field missing", WORKFORCE, remove("//etx:expert/etx:specialisation")),
    ("tax code of 11 digits", ENFORCEMENT, set_text("//etx:payload/etx:subject_tax_code", "01098765430")),
    ("incident without severity", ENFORCEMENT, remove("//etx:incident/etx:severity")),
    ("date-time without offset", ENFORCEMENT, set_text("//etx:incident/etx:detected_at", "2026-10-12T02:14:00")),
    ("case type outside the list", ENFORCEMENT, set_text("//etx:payload/etx:case_type", "lawsuit")),
    ("negative count of users", ENFORCEMENT, set_text("//etx:incident/etx:affected_users", "-1")),
    ("category of another schema, single record", ENFORCEMENT, set_text("/etx:record/etx:category", "workforce")),
]


def envelope_of(tree):
    """The (category, version) the records of a document carry; None where they carry none."""
    found = set()
    root = tree.getroot()
    recs = [root] if etree.QName(root).localname == "record" else list(root)
    for rec in recs:
        if not isinstance(rec.tag, str):
            continue
        cat = rec.find(q("category"))
        ver = rec.find(q("schema_version"))
        found.add(
            (
                cat.text.strip().lower() if cat is not None and cat.text else None,
                ver.text.strip().lstrip("vV") if ver is not None and ver.text else None,
            )
        )
    if len(found) != 1:
        raise ValueError(f"records of several categories or versions: {sorted(map(str, found))}")
    return found.pop()


def batch_variant(xsd_tree):
    """The XSD with the envelope elements optional and any number of records."""
    tree = copy.deepcopy(xsd_tree)
    for el in tree.xpath(
        "/xs:schema/xs:complexType[@name='RecordType']/xs:all/xs:element[@name!='payload']",
        namespaces=XSN,
    ):
        el.set("minOccurs", "0")
    for el in tree.xpath("/xs:schema/xs:element[@name='records']//xs:element[@ref='etx:record']", namespaces=XSN):
        el.set("maxOccurs", "unbounded")
    return etree.XMLSchema(tree)


def check(schema, tree):
    ok = schema.validate(tree)
    last = schema.error_log.last_error
    error = None if ok else f"line {last.line}: {last.message}"
    return ok, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="the workspace root")
    args = parser.parse_args()
    root = pathlib.Path(args.root).resolve()
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731

    xsd_trees, strict, batch = {}, {}, {}
    for path in sorted(root.glob("contracts/schemas/*/v*.xsd")):
        key = (path.parent.name, path.stem.lstrip("v"))
        tree = etree.parse(str(path), PARSER)
        xsd_trees[key] = (rel(path), tree)
        strict[key] = etree.XMLSchema(tree)
        batch[key] = batch_variant(tree)
    report = {"schemas": [name for name, _ in xsd_trees.values()], "valid": [], "variants": [], "invalid": []}
    failed = False

    examples = [(p, "strict") for p in sorted(root.glob("contracts/examples/records/**/*.xml"))]
    examples += [(p, "batch") for p in sorted(root.glob("contracts/examples/batches/*.xml"))]
    for path, mode in examples:
        entry = {"file": rel(path), "mode": mode}
        try:
            tree = etree.parse(str(path), PARSER)
            category, version = envelope_of(tree)
            if mode == "batch":
                category = category or path.name.split("-")[0]
                version = version or "1"
            if category not in CATEGORIES or (category, version) not in strict:
                raise LookupError(f"no XSD for category {category!r} version {version!r}")
            schemas = strict if mode == "strict" else batch
            entry["schema"] = xsd_trees[(category, version)][0]
            entry["ok"], entry["error"] = check(schemas[(category, version)], tree)
        except Exception as e:  # reported, and fails the run
            entry["ok"], entry["error"] = False, f"{type(e).__name__}: {e}"
        failed |= not entry["ok"]
        report["valid"].append(entry)

    for kind, cases in (("variants", VARIANTS), ("invalid", INVALID)):
        for name, base, mutate in cases:
            entry = {"name": name, "base": base}
            try:
                tree = etree.parse(str(root / base), PARSER)
                key = envelope_of(tree)
                mutate(tree)
                entry["ok"], entry["error"] = check(strict[key], tree)
                if kind == "invalid":
                    entry["rejected"] = not entry.pop("ok")
                    failed |= not entry["rejected"]
                else:
                    failed |= not entry["ok"]
            except Exception as e:  # a broken case fails the run
                entry["ok" if kind == "variants" else "rejected"] = False
                entry["error"] = f"{type(e).__name__}: {e}"
                failed = True
            report[kind].append(entry)

    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
