"""CSV import and export end to end: POST /v1/leads/import (header aliases,
?map=, per-row errors with physical line numbers, upsert on re-import, whole
rows only, streamed chunked uploads sent slowly in small pieces, the
--max-import limit with Content-Length and chunked bodies, content-type and
empty/unmapped bodies, credentials), GET /v1/leads/export.csv (header, row
count, formula neutralisation, a round trip), and `ehub import leads` on a
stopped server's store giving the same summary as the API.

Every test makes its own tenant(s) (ehub tenant add / ehub key create)."""
import csv
import io
import json
import os
import socket
import threading
import time
import urllib.parse

from lib import parse_responses
from tenants import Tenant, run_cli

IMPORT = "/v1/leads/import"


def post_csv(tn, body, query="", ctype="text/csv", key=None):
    """POSTs body to the import route with tn's admin key (key: another key;
    "" for none). Returns (status, JSON)."""
    key = tn.key if key is None else key
    h = {"Content-Type": ctype} if ctype else {}
    if key:
        h["Authorization"] = "Bearer " + key
    if isinstance(body, str):
        body = body.encode()
    st, _, b = tn.srv.request("POST", IMPORT + query, body=body, headers=h, timeout=60)
    try:
        return st, json.loads(b) if b else None
    except ValueError:
        return st, {"_raw": b[:300]}


def imported_ok(tn, body, query=""):
    st, j = post_csv(tn, body, query)
    assert st == 200, (st, j)
    return j


def raw_upload(srv, key, pieces, chunked=True, content_length=None, pause=0.0, ctype="text/csv", path=IMPORT,
               headers=(), head_pause=0.0):
    """Sends a POST by hand: the head, then each piece (as one chunk when
    chunked) with a pause after it. A reader thread collects the answer
    meanwhile, so an early reply (413) is seen even if the server stops
    reading. head_pause: a wait between the head and the body, so the
    server has the request in hand before the first byte of body arrives.
    Returns (status, headers, JSON body, pieces sent)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60 * srv.slow)
    head = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    if key:
        head.append("Authorization: Bearer " + key)
    if ctype:
        head.append("Content-Type: " + ctype)
    head += list(headers)
    if chunked:
        head.append("Transfer-Encoding: chunked")
    else:
        head.append("Content-Length: %d" % (content_length if content_length is not None
                                              else sum(len(p) for p in pieces)))
    got = []
    done = threading.Event()

    def reader():
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got.append(d)
        except OSError:
            pass
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    sent = 0
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if head_pause:
            time.sleep(head_pause)
        for p in pieces:
            if done.is_set():
                break
            s.sendall((b"%x\r\n" % len(p) + p + b"\r\n") if chunked else p)
            sent += 1
            if pause:
                time.sleep(pause)
        if chunked and not done.is_set():
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered early and stopped reading
    done.wait(60 * srv.slow)
    s.close()
    data = b"".join(got)
    resp = parse_responses(data)
    assert resp, "no response: %r" % data[:200]
    st, hd, body = resp[-1]
    return st, hd, (json.loads(body) if body else None), sent


def split_pieces(data, sizes=(1, 7, 1500, 333, 2, 4096, 13, 900)):
    """Cuts data into pieces of irregular sizes (so rows, quotes and CRLFs
    straddle pieces)."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[i:i + n])
        i += n
        k += 1
    return out


def by_email(tn):
    return {x["email"]: x for x in tn.list_all() if x["email"]}


# ---------------------------------------------------------------- mapping


def test_header_aliases_and_value_parsing(t):
    tn = Tenant(t)
    body = ("First Name,Last Name,E-mail,Mobile,Lead Source,Budget,Min Price,Bedrooms,Zip,Pre-approved,Tags,Notes\r\n"
            'Ana,Lima,Ana.Lima@Example.COM,(415) 555-0100,Zillow,"$450,000",$300000,3,94110,yes,"buyer;hot",call her\r\n'
            "Ben,Ode,ben@example.com,+1 212 555 0101,Referral,,,2,10001,no,seller,\r\n")
    j = imported_ok(tn, body)
    assert j == {"rows": 2, "imported": 2, "updated": 0, "failed": 0, "errors": [], "ignored_columns": ["Notes"]}, j
    leads = by_email(tn)
    ana, ben = leads["ana.lima@example.com"], leads["ben@example.com"]
    assert (ana["first_name"], ana["last_name"], ana["phone"], ana["source"]) == ("Ana", "Lima", "+14155550100", "Zillow"), ana
    assert (ana["budget_max"], ana["budget_min"], ana["beds"], ana["areas"]) == (450000, 300000, 3, ["94110"]), ana
    assert ana["preapproved"] is True and ana["tags"] == ["buyer", "hot"], ana
    assert ben["preapproved"] is False and ben["phone"] == "+12125550101" and ben["tags"] == ["seller"], ben
    assert ben["budget_max"] is None and ben["areas"] == ["10001"], ben
    # more spellings: Name (split), Phone Number, Email Address, Bedrooms, Lead Source, case and spaces
    body = (" full name , PHONE NUMBER,Email Address,lead source,Time Zone,Max Price,Bathrooms\n"
            "Maria de la Cruz,4155550102,maria@example.com,Open House,America/Los_Angeles,1.2e6,2.5\n"
            "Cher,4155550103,cher@example.com,,,,\n")
    j = imported_ok(tn, body)
    assert (j["imported"], j["failed"], j["ignored_columns"]) == (2, 0, []), j
    leads = by_email(tn)
    m, c = leads["maria@example.com"], leads["cher@example.com"]
    assert (m["first_name"], m["last_name"], m["phone"], m["source"], m["timezone"]) == \
        ("Maria", "de la Cruz", "+14155550102", "Open House", "America/Los_Angeles"), m
    assert m["budget_max"] == 1200000 and m["baths"] == 2.5, m
    assert c["first_name"] == "Cher" and c["last_name"] is None, c
    # a UTF-8 byte-order mark (as Excel writes) does not hide the first column
    j = imported_ok(tn, "\ufeffFirst Name,Email\nBom,bom@example.com\n")
    assert (j["imported"], j["ignored_columns"]) == (1, []), j
    assert by_email(tn)["bom@example.com"]["first_name"] == "Bom"


def test_map_parameter(t):
    tn = Tenant(t)
    body = ("Given,Family,Cell Phone,Mail,Origin,Zip\n"
            "Iris,West,4155550110,iris@example.com,Billboard,94110\n")
    # without a map only Zip is known
    q = "?map=" + urllib.parse.quote("Given:first_name,Family:last_name,cell phone:phone,Mail:email,Origin:source")
    j = imported_ok(tn, body, q)
    assert (j["rows"], j["imported"], j["failed"], j["ignored_columns"]) == (1, 1, 0, []), j
    (lead,) = tn.list_all()
    assert (lead["first_name"], lead["last_name"], lead["phone"], lead["email"], lead["source"], lead["areas"]) == \
        ("Iris", "West", "+14155550110", "iris@example.com", "Billboard", ["94110"]), lead
    # a map beats an alias: here the "Zip" column is the lead's stage
    j = imported_ok(tn, "Email,Zip\niris@example.com,hot-zip\n", "?map=" + urllib.parse.quote("Zip:stage"))
    assert j["updated"] == 1, j
    lead = tn.get_lead(lead["id"])
    assert lead["stage"] == "hot-zip" and lead["areas"] == ["94110"], lead


# ---------------------------------------------------------------- errors and line numbers


BAD_ROWS_CSV = (
    "first_name,last_name,email,phone,notes\n"          # 1
    "Good,One,good1@example.com,4155550120,\n"         # 2
    'Multi,Line,multi@example.com,,"first line\n'     # 3
    "second line\n"                                    # 4
    'third ""quoted"" line"\n'                         # 5
    "Bad,Email,bad-email@,4155550121,\n"               # 6
    "\n"                                               # 7 (empty: skipped)
    "Bad,Phone,badphone@example.com,12,\n"             # 8
    'Str"ay,Quote,stray@example.com,,\n'               # 9  (malformed CSV)
    ",,,,only a note\n"                                # 10 (no name, email or phone)
    "Good,Two,good2@example.com,,\r\n"                 # 11 (CRLF)
    '"Quoted, Name",Three,good3@example.com,"(212) 555-0122",x\n'  # 12
)


def test_bad_rows_reported_with_physical_lines(t):
    tn = Tenant(t)
    j = imported_ok(tn, BAD_ROWS_CSV)
    lines = [(e["line"], sorted(e.get("fields", {}))) for e in j["errors"]]
    assert lines == [(6, ["email"]), (8, ["phone"]), (9, []), (10, [])], j["errors"]
    assert (j["imported"], j["updated"], j["failed"]) == (4, 0, 4), j
    assert j["ignored_columns"] == ["notes"], j
    leads = by_email(tn)
    assert sorted(leads) == sorted(["good1@example.com", "multi@example.com", "good2@example.com",
                                    "good3@example.com"]), sorted(leads)
    assert leads["good3@example.com"]["first_name"] == "Quoted, Name", leads["good3@example.com"]
    assert leads["good3@example.com"]["phone"] == "+12125550122"
    for e in ["bad-email@", "badphone@example.com", "stray@example.com"]:
        assert tn.list_all(email=e) == [], e
    assert tn.list_all(q="Bad") == [] and tn.list_all(q="Str") == []


def test_summary_counts_every_data_row(t):
    # "rows" is the number of data rows read; each ends up imported, updated
    # or failed, so the three add up to it (a malformed CSV row included).
    tn = Tenant(t)
    j = imported_ok(tn, BAD_ROWS_CSV)
    assert j["imported"] + j["updated"] + j["failed"] == j["rows"], \
        "rows=%d but imported+updated+failed=%d: %r" % (j["rows"], j["imported"] + j["updated"] + j["failed"], j)


def test_row_is_imported_whole_or_not_at_all(t):
    tn = Tenant(t)
    body = ("First Name,Last Name,Email,Phone,Budget,Bedrooms,Pre-approved,Tags,Zip\n"
            "Whole,Row,whole@example.com,4155550130,$500000,4,yes,a;b,94110\n"     # 2 good
            "Half,Row,half@example.com,4155550131,lots,4,yes,c,94111\n"            # 3 bad budget
            "Other,Half,other-half@example.com,4155550132,1000,3,maybe,d,94112\n"  # 4 bad boolean
            "Third,Half,third-half@example.com,4155550133,1000,three,no,e,94113\n")  # 5 bad number
    j = imported_ok(tn, body)
    assert [(e["line"], sorted(e["fields"])) for e in j["errors"]] == \
        [(3, ["budget_max"]), (4, ["preapproved"]), (5, ["beds"])], j
    (lead,) = tn.list_all()
    assert (lead["first_name"], lead["last_name"], lead["email"], lead["phone"], lead["budget_max"], lead["beds"],
            lead["preapproved"], lead["tags"], lead["areas"]) == \
        ("Whole", "Row", "whole@example.com", "+14155550130", 500000, 4, True, ["a", "b"], ["94110"]), lead
    for phone in ["+14155550131", "+14155550132", "+14155550133"]:
        assert tn.list_all(phone=phone) == [], phone
    # a bad row never half-updates an existing lead either
    j = imported_ok(tn, "Email,First Name,Budget\nwhole@example.com,Changed,not-money\n")
    assert j["failed"] == 1 and j["updated"] == 0, j
    assert tn.get_lead(lead["id"]) == lead


def test_database_rejection_fails_only_that_row(t):
    # A row the database refuses (an agent id that does not exist) sits in a
    # batch with good rows: the batch is retried row by row, so the others
    # are imported and only that row is reported, with its line.
    tn = Tenant(t)
    tn.set_routing("off")
    rows = ["first_name,email,agent_id"]
    for i in range(12):
        rows.append("R%d,r%d@example.com,%s" % (i, i, "987654321" if i == 5 else ""))
    j = imported_ok(tn, "\n".join(rows) + "\n")
    assert (j["imported"], j["failed"]) == (11, 1), j
    assert j["errors"][0]["line"] == 7, j
    assert sorted(by_email(tn)) == sorted("r%d@example.com" % i for i in range(12) if i != 5)


def test_import_cannot_assign_another_tenants_agent(t):
    # The API refuses an agent_id of another tenant (422); an import row must
    # not be able to do what the API refuses.
    ta, tb = Tenant(t), Tenant(t)
    ta.set_routing("off")
    theirs = tb.create_agent("Not yours", capacity=50)
    mine = ta.create_agent("Yours", capacity=50)
    j = imported_ok(ta, "first_name,email,agent_id\nX,x@example.com,%d\nY,y@example.com,%d\n" % (theirs["id"], mine["id"]))
    leads = by_email(ta)
    assert leads["y@example.com"]["agent_id"] == mine["id"], leads
    assert theirs["id"] not in [x["agent_id"] for x in ta.list_all()], \
        "tenant A's lead now points at tenant B's agent %d: %r" % (theirs["id"], j)
    assert j["failed"] == 1 and j["errors"][0]["line"] == 2, j


def test_error_list_is_capped_but_failures_counted(t):
    tn = Tenant(t)
    body = "first_name,email\n" + "".join(",bad%d@\n" % i for i in range(1200)) + "Ok,ok@example.com\n"
    j = imported_ok(tn, body)
    assert j["failed"] == 1200 and j["imported"] == 1, (j["failed"], j["imported"])
    assert len(j["errors"]) == 1000, len(j["errors"])
    assert [e["line"] for e in j["errors"][:3]] == [2, 3, 4] and j["errors"][-1]["line"] == 1001


# ---------------------------------------------------------------- upsert


def test_reimport_updates_instead_of_duplicating(t):
    tn = Tenant(t)
    body = "First Name,Email,Phone,Stage\n" + "".join(
        "P%d,p%d@example.com,415555%04d,new\n" % (i, i, 140 + i) for i in range(30))
    j = imported_ok(tn, body)
    assert (j["rows"], j["imported"], j["updated"], j["failed"]) == (30, 30, 0, 0), j
    ids = sorted(x["id"] for x in tn.list_all())
    j = imported_ok(tn, body)
    assert (j["rows"], j["imported"], j["updated"], j["failed"]) == (30, 0, 30, 0), j
    assert sorted(x["id"] for x in tn.list_all()) == ids
    # changed values land on the same leads; matching by phone works too
    body2 = "First Name,Mobile,Stage\n" + "".join(
        "Q%d,(415) 555-%04d,contacted\n" % (i, 140 + i) for i in range(30))
    j = imported_ok(tn, body2)
    assert (j["imported"], j["updated"]) == (0, 30), j
    leads = tn.list_all()
    assert sorted(x["id"] for x in leads) == ids
    assert {x["stage"] for x in leads} == {"contacted"} and all(x["first_name"].startswith("Q") for x in leads)
    assert all(x["email"].startswith("p") for x in leads), "a column not in the file must stay as it was"
    # the same person twice in one file is one lead
    j = imported_ok(tn, "Email,First Name\nnew@example.com,A\nNEW@example.com,B\n")
    assert (j["imported"], j["updated"]) == (1, 1), j
    assert [x["first_name"] for x in tn.list_all(email="new@example.com")] == ["B"]


# ---------------------------------------------------------------- streaming


def _big_csv(n, bad_every=None):
    lines = ["First Name,Last Name,Email,Mobile,Lead Source,Budget,Notes"]
    bad = []
    for i in range(n):
        note = '"multi\nline note"' if i == 3 else "n%d" % i  # a quoted field over two lines, early on
        if bad_every and i % bad_every == bad_every - 1:
            lines.append("Bad%d,Row,bad%d@,,Import,,%s" % (i, i, note))
            bad.append(i)
        else:
            lines.append('Lead%d,Chunk,chunk%05d@example.com,+1415%07d,Import,"$%d,000",%s' % (i, i, 5550000 + i, 100 + i % 900, note))
    return ("\r\n".join(lines) + "\r\n").encode(), bad


def test_chunked_upload_in_small_pieces(t):
    tn = Tenant(t)
    tn.set_routing("off")
    n = 2600
    data, bad = _big_csv(n, bad_every=700)
    pieces = split_pieces(data)
    assert len(pieces) > 150
    st, h, j, sent = raw_upload(tn.srv, tn.key, pieces, chunked=True, pause=0.0005)
    assert st == 200, (st, j)
    assert sent == len(pieces)
    assert (j["imported"], j["updated"], j["failed"]) == (n - len(bad), 0, len(bad)), {k: j[k] for k in j if k != "errors"}
    # physical lines: header is line 1, row i is line i+2, plus one for the
    # two-line note of row 3
    assert [e["line"] for e in j["errors"]] == [i + 3 for i in bad], (j["errors"], bad)
    leads = tn.list_all()
    assert len(leads) == n - len(bad), len(leads)
    emails = {x["email"] for x in leads}
    assert emails == {"chunk%05d@example.com" % i for i in range(n) if i not in bad}
    one = tn.list_all(email="chunk02345@example.com")[0]
    assert (one["first_name"], one["phone"], one["budget_max"], one["source"]) == \
        ("Lead2345", "+14155552345", (100 + 2345 % 900) * 1000, "Import"), one


def test_content_length_upload_in_small_pieces(t):
    tn = Tenant(t)
    tn.set_routing("off")
    data, _ = _big_csv(1200)
    st, h, j, sent = raw_upload(tn.srv, tn.key, split_pieces(data, (4000, 3, 1, 2500)), chunked=False, pause=0.0005)
    assert st == 200 and (j["imported"], j["failed"]) == (1200, 0), (st, j)
    assert len(tn.list_all()) == 1200
    # as curl sends big bodies: Expect: 100-continue first
    st, h, j, sent = raw_upload(tn.srv, tn.key, split_pieces(data, (65536,)), chunked=False,
                                headers=["Expect: 100-continue"])
    assert st == 200 and (j["imported"], j["updated"], j["failed"]) == (0, 1200, 0), (st, j)


def test_import_larger_than_max_import_is_413(t):
    s = t.new_server(extra=["--max-import", "64K"], name="maximport")
    tn = Tenant(t, srv=s)
    tn.set_routing("off")
    data, _ = _big_csv(2000)
    assert len(data) > 2 * 64 * 1024
    # with Content-Length: refused before anything is read
    st, h, j, _ = raw_upload(s, tn.key, split_pieces(data, (8192,)), chunked=False)
    assert st == 413 and h["content-type"].startswith("application/json"), (st, h, j)
    assert j["error"]["code"] == "body_too_large", j
    assert tn.list_all() == []
    # chunked: cut off at the limit; the batches already written stay and the answer says how many
    st, h, j, sent = raw_upload(s, tn.key, split_pieces(data, (4096,)), chunked=True, pause=0.001)
    assert st == 413 and j["error"]["code"] == "body_too_large", (st, j)
    res = j["error"]["result"]
    written = res["imported"] + res["updated"]
    assert 500 <= written < 2000, res  # at least one batch of 500 fits in 64K
    assert len(tn.list_all()) == written, (len(tn.list_all()), res)
    # under the limit on the same server: fine
    small, _ = _big_csv(300)
    assert len(small) < 64 * 1024
    st, j = post_csv(tn, small)
    assert st == 200 and j["failed"] == 0 and j["imported"] + j["updated"] == 300, (st, j)
    # the ordinary JSON limit (--max-body) does not apply to imports, and the server is still fine
    assert s.request("GET", "/health")[0] == 200
    s.stop()


# ---------------------------------------------------------------- refusals


def test_wrong_content_type_is_415(t):
    tn = Tenant(t)
    body = "first_name,email\nA,a415@example.com\n"
    for ct in ["application/json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
               "image/png"]:
        st, j = post_csv(tn, body, ctype=ct)
        assert st == 415 and j["error"]["code"] == "unsupported_media_type", (ct, st, j)
    assert tn.list_all() == []
    for ct in ["text/csv; charset=utf-8", "TEXT/CSV", "application/csv"]:
        st, j = post_csv(tn, body, ctype=ct)
        assert st == 200 and j["imported"] + j["updated"] == 1, (ct, st, j)


def test_empty_body_is_400(t):
    tn = Tenant(t)
    st, j = post_csv(tn, b"")
    assert st == 400 and j["error"]["code"] == "invalid_csv", (st, j)
    st, h, j, _ = raw_upload(tn.srv, tn.key, [], chunked=True)
    assert st == 400 and j["error"]["code"] == "invalid_csv", (st, j)
    st, j = post_csv(tn, b"\r\n\n\r\n")
    assert st == 400 and j["error"]["code"] == "invalid_csv", (st, j)
    assert tn.list_all() == []


def test_header_that_maps_nothing_is_400(t):
    # The header row is refused as soon as it is parsed, from inside the body
    # stream, often while the client is still sending: 400 invalid_csv, and
    # the server carries on. (This runs on a server of its own: a reply from
    # inside the body callback once touched the freed request -- a crash
    # under AddressSanitizer -- and must not take the module's server along.)
    s = t.new_server(name="header-refused")
    tn = Tenant(t, srv=s)

    def alive(what):
        assert s.proc.poll() is None and s.request("GET", "/health")[0] == 200, "server gone after %s" % what

    for body in ["foo,bar,baz\n1,2,3\n", "id,score,created_at\n1,2,3\n", "foo\n"]:
        st, j = post_csv(tn, body)
        assert st == 400 and j["error"]["code"] == "invalid_csv", (body, st, j)
        assert "header" in j["error"]["message"], j
        alive(repr(body))
    # a map to fields that do not exist maps nothing either
    st, j = post_csv(tn, "Given,Mail\nA,a@example.com\n", "?map=" + urllib.parse.quote("Given:nickname,Mail:mailbox"))
    assert st == 400 and j["error"]["code"] == "invalid_csv", (st, j)
    alive("an unusable ?map")
    # streamed: the head first, then the header row alone, then more rows
    for chunked, head_pause in [(True, 0), (True, 0.1), (False, 0.1)]:
        pieces = [b"colour,size\n", b"red,XL\n", b"blue,S\n"]
        st, h, j, _ = raw_upload(s, tn.key, pieces, chunked=chunked, head_pause=head_pause * t.slow,
                                 pause=0.1 * t.slow if head_pause else 0)
        assert st == 400 and j["error"]["code"] == "invalid_csv", (chunked, st, j)
        alive("a streamed header refused (chunked=%s, head_pause=%s)" % (chunked, head_pause))
    assert tn.list_all() == []
    s.stop()


def test_import_needs_credentials_and_a_writer_role(t):
    tn = Tenant(t)
    body = "first_name,email\nA,auth-import@example.com\n"
    st, j = post_csv(tn, body, key="")
    assert st == 401, (st, j)
    st, j = post_csv(tn, body, key="ehk_" + "1" * 40)
    assert st == 401, (st, j)
    st, h, j, _ = raw_upload(tn.srv, None, [body.encode()], chunked=True)
    assert st == 401, (st, j)
    for role in ["viewer", "analyst"]:
        st, j = post_csv(tn, body, key=tn.role_client(role).key)
        assert st == 403 and j["error"]["code"] == "forbidden", (role, st, j)
    assert tn.list_all() == []
    st, j = post_csv(tn, body, key=tn.role_client("agent").key)
    assert st == 200 and j["imported"] == 1, (st, j)


# ---------------------------------------------------------------- export


def _export(tn, query="", key=None):
    st, h, b = tn.srv.request("GET", "/v1/leads/export.csv" + query,
                              headers={"Authorization": "Bearer " + (key or tn.key)}, timeout=60)
    assert st == 200, (st, b[:300])
    assert h["content-type"].startswith("text/csv"), h
    rows = list(csv.reader(io.StringIO(b.decode("utf-8"), newline="")))
    return h, rows[0], rows[1:]


def test_export_returns_what_was_imported(t):
    tn = Tenant(t)
    tn.set_routing("off")
    n = 40
    body = "First Name,Last Name,Email,Mobile,Lead Source,Tags,Budget,Zip,Pre-approved\n" + "".join(
        'E%d,Xp,e%02d@example.com,415555%04d,%s,"buyer;t%d","$%d,000",941%02d,%s\n'
        % (i, i, 200 + i, "Expo" if i % 2 else "Other", i, 300 + i, i, "yes" if i % 3 else "no") for i in range(n))
    j = imported_ok(tn, body)
    assert j["imported"] == n, j
    h, head, rows = _export(tn)
    assert head[:1] == ["id"] and {"first_name", "last_name", "email", "phone", "source", "tags", "budget_max",
                                   "areas", "preapproved", "created_at", "updated_at"} <= set(head), head
    assert len(rows) == n and h["x-export-rows"] == str(n), (len(rows), h)
    assert all(len(r) == len(head) for r in rows)
    recs = {r[head.index("email")]: dict(zip(head, r)) for r in rows}
    e7 = recs["e07@example.com"]
    assert (e7["first_name"], e7["phone"], e7["source"], e7["tags"], e7["areas"], e7["preapproved"]) == \
        ("E7", "+14155550207", "Expo", "buyer;t7", "94107", "true"), e7
    assert float(e7["budget_max"]) == 307000, e7
    # ids newest first, like the list
    ids = [int(r[0]) for r in rows]
    assert ids == sorted(ids, reverse=True) and set(ids) == {x["id"] for x in tn.list_all()}
    # the list's filters apply
    h, head2, rows2 = _export(tn, "?source=Expo")
    assert head2 == head and len(rows2) == n // 2 and {r[head.index("source")] for r in rows2} == {"Expo"}
    # readers may export
    h, _, rows3 = _export(tn, key=tn.role_client("viewer").key)
    assert len(rows3) == n


def test_export_neutralises_formulas(t):
    tn = Tenant(t)
    nasty = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(1,2)", "-2+3", "@cmd", "\t=1"]
    for i, name in enumerate(nasty):
        tn.create_lead(first_name=name, last_name="Safe", email="f%d@example.com" % i, phone="4155550%03d" % (300 + i),
                       source="=1+1", tags=["=evil", "ok"])
    h, head, rows = _export(tn)
    fn, ph, src, tags = head.index("first_name"), head.index("phone"), head.index("source"), head.index("tags")
    by_email = {r[head.index("email")]: r for r in rows}
    for i, name in enumerate(nasty):
        r = by_email["f%d@example.com" % i]
        assert r[fn] == "'" + name, (name, r[fn])
        assert r[src] == "'=1+1", r[src]
        assert not r[tags].startswith(("=", "+", "-", "@")), r[tags]
        # an E.164 phone is a number, not a formula: left as it is
        assert r[ph] == "+14155550%03d" % (300 + i), r[ph]
        assert r[head.index("last_name")] == "Safe"


def test_export_reimports_to_the_same_leads(t):
    ta, tb = Tenant(t), Tenant(t)
    for tn in (ta, tb):
        tn.set_routing("off")
    j = imported_ok(ta, BAD_ROWS_CSV)
    assert j["imported"] == 4, j
    ta.create_lead(first_name="Full", last_name="Record", email="full@example.com", phone="4155550190",
                   source="Web", tags=["a", "b"], stage="contacted", status="won", timezone="America/New_York",
                   language="es", consent_sms=True, consent_email=False, budget_min=100000, budget_max=250000.5,
                   beds=3, baths=1.5, property_type="condo", areas=["94110", "Mission"], timeline="3-6 months",
                   preapproved=True, ghl_contact_id="c_full_1", ghl_location_id="loc_1")
    st, h, b = ta.srv.request("GET", "/v1/leads/export.csv", headers={"Authorization": "Bearer " + ta.key})
    assert st == 200
    j = imported_ok(tb, b)
    assert (j["imported"], j["failed"]) == (5, 0), j
    assert sorted(j["ignored_columns"]) == ["company", "created_at", "id", "job_title", "linkedin_url", "score", "updated_at", "version"], j

    def strip(x):
        return {k: v for k, v in x.items() if k not in ("id", "version", "created_at", "updated_at", "score")}

    a = {x["email"]: strip(x) for x in ta.list_all()}
    b2 = {x["email"]: strip(x) for x in tb.list_all()}
    assert a == b2, [(k, a[k], b2.get(k)) for k in a if a[k] != b2.get(k)]


# ---------------------------------------------------------------- CLI


def test_cli_import_gives_the_same_summary(t):
    path = os.path.join(t.srv.tmp, "cli-import.csv")
    body = BAD_ROWS_CSV + "".join("Extra%d,Row,extra%d@example.com,,\n" % (i, i) for i in range(700))
    with open(path, "w", newline="") as f:
        f.write(body)
    # over the API
    ta = Tenant(t)
    ta.set_routing("off")
    api = imported_ok(ta, body.encode())
    assert api["imported"] == 704, api
    # the CLI, on the store of a server that is stopped
    s = t.new_server(name="cli-import")
    tb = Tenant(t, srv=s)
    tb.set_routing("off")
    assert s.stop() == 0
    r = run_cli(t, s, "import", "leads", path, "--tenant", tb.slug)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    cli = json.loads(r.stdout)
    assert cli == api, (cli, api)
    r = run_cli(t, s, "import", "leads", path, "--tenant", tb.slug)
    again = json.loads(r.stdout)
    assert r.returncode == 0 and (again["imported"], again["updated"], again["failed"]) == (0, 704, 4), again
    # usage and unknown tenants
    assert run_cli(t, s, "import", "leads", "--tenant", tb.slug).returncode == 2
    r = run_cli(t, s, "import", "leads", path, "--tenant", "no-such-tenant-%d" % os.getpid())
    assert r.returncode == 1 and "no-such-tenant" in r.stderr, (r.returncode, r.stderr)
    r = run_cli(t, s, "import", "leads", path + ".missing", "--tenant", tb.slug)
    assert r.returncode != 0, (r.returncode, r.stdout)
    # started again, the server serves what the CLI wrote
    s.start()
    got = {x["email"]: (x["first_name"], x["last_name"], x["phone"]) for x in tb.list_all()}
    want = {x["email"]: (x["first_name"], x["last_name"], x["phone"]) for x in ta.list_all()}
    assert got == want and len(got) == 704, (len(got), len(want))
    s.stop()
