"""The leads REST API end to end, over real HTTP against the real binary:
leads (create, get, PATCH with If-Match/ETag, delete, validation,
normalisation, upsert), list filters and keyset pagination (also while
other clients insert), activities, agents, listings, routing (round robin,
least loaded, off, capacity, area/language preference, re-routing) with the
reasons left in the event log, tenant isolation and role checks.

Every test makes its own tenant(s) (ehub tenant add / ehub key create against
the server's store), so tests never see each other's rows."""
import threading
import time
import urllib.parse

from tenants import Client, Tenant


def _q(s):
    return urllib.parse.quote(s, safe="")


def _ids(items):
    return [x["id"] for x in items]


def _err(j):
    assert isinstance(j, dict) and "error" in j, j
    return j["error"]


# ---------------------------------------------------------------- create / get


def test_create_get_normalises_contact_fields(t):
    tn = Tenant(t)
    st, h, lead = tn.call("POST", "/v1/leads", {
        "first_name": "Ana", "last_name": "Lima", "email": "  Ana.Lima@Example.COM ",
        "phone": "(415) 555-0132", "source": "Zillow", "tags": ["buyer", "hot"], "areas": ["94110"],
        "budget_max": 950000, "beds": 3, "preapproved": True, "language": "pt", "score": 99, "version": 7})
    assert st == 201, (st, lead)
    assert lead["score"] != 99 and 0 < lead["score"] < 1 and lead["version"] < 7, "read-only fields are the server's: %r" % lead
    assert lead["email"] == "ana.lima@example.com", lead
    assert lead["phone"] == "+14155550132", lead
    assert lead["status"] == "open" and lead["stage"] == "new", lead
    assert lead["tags"] == ["buyer", "hot"] and lead["areas"] == ["94110"], lead
    assert lead["budget_max"] == 950000 and lead["beds"] == 3 and lead["preapproved"] is True, lead
    assert h["location"] == "/v1/leads/%d" % lead["id"], h
    assert h["etag"] == '"v%d"' % lead["version"], h
    st, h2, got = tn.call("GET", "/v1/leads/%d" % lead["id"])
    assert st == 200 and got == lead, (st, got, lead)
    assert h2["etag"] == h["etag"], (h2, h)
    # other spellings of the same number normalise to the same E.164 value
    for raw in ["+1 415 555 0133", "415.555.0133", "1-415-555-0133", "tel:+1-415-555-0133"]:
        st, j = tn.api("POST", "/v1/leads", {"first_name": "P", "phone": raw})
        assert st in (200, 201) and j["phone"] == "+14155550133", (raw, st, j)
    assert len(tn.list_all(phone="+14155550133")) == 1


def test_phone_uses_tenant_default_country(t):
    tn = Tenant(t, settings={"default_country": "GB"})
    lead = tn.create_lead(first_name="Olly", phone="020 7946 0018")
    assert lead["phone"] == "+442079460018", lead
    # with a country code the default does not matter
    lead = tn.create_lead(first_name="Sam", phone="+1 (212) 555-0199")
    assert lead["phone"] == "+12125550199", lead
    # too short for anywhere
    st, j = tn.api("POST", "/v1/leads", {"first_name": "Us", "phone": "020 79"})
    assert st == 422 and "phone" in _err(j)["fields"], (st, j)
    for bad in ["ZZ", "USA", "", 44]:
        st, j = tn.api("PATCH", "/v1/settings", {"default_country": bad})
        assert st == 422 and "default_country" in _err(j)["fields"], (bad, st, j)
    assert tn.api("GET", "/v1/settings")[1]["default_country"] == "GB"


def test_validation_errors_name_fields_and_store_nothing(t):
    tn = Tenant(t)
    before = len(tn.events())
    cases = [
        ({"first_name": "X", "email": "not-an-email"}, ["email"]),
        ({"first_name": "X", "email": "a@b"}, ["email"]),
        ({"first_name": "X", "phone": "12"}, ["phone"]),
        ({"first_name": "X", "phone": "415-555-CALL"}, ["phone"]),
        ({"first_name": "X", "email": "bad@", "phone": "1"}, ["email", "phone"]),
        ({"first_name": "X", "status": "maybe"}, ["status"]),
        ({"first_name": "X", "tags": "hot"}, ["tags"]),
        ({"first_name": "X", "budget_min": -5}, ["budget_min"]),
        ({"first_name": "X", "consent_sms": "yes"}, ["consent_sms"]),
        ({"first_name": "X", "favourite_colour": "blue"}, ["favourite_colour"]),
        ({"first_name": "X" * 101}, ["first_name"]),
    ]
    for body, fields in cases:
        st, h, j = tn.call("POST", "/v1/leads", body)
        assert st == 422, (body, st, j)
        assert h["content-type"].startswith("application/json"), h
        e = _err(j)
        assert e["code"] == "validation_failed", j
        assert sorted(e["fields"]) == sorted(fields), (body, e)
    st, j = tn.api("POST", "/v1/leads", [1, 2])
    assert st == 422, (st, j)
    st, j = tn.api("POST", "/v1/leads", b"{not json", {"Content-Type": "application/json"})
    assert st == 400 and _err(j)["code"] == "invalid_json", (st, j)
    # nothing was stored and nothing was logged
    assert tn.list_all() == []
    assert len(tn.events()) == before, tn.events()[before:]
    # an invalid PATCH changes nothing either
    lead = tn.create_lead(first_name="Keep", email="keep@example.com")
    st, j = tn.api("PATCH", "/v1/leads/%d" % lead["id"], {"first_name": "Changed", "email": "broken@@x"})
    assert st == 422 and list(_err(j)["fields"]) == ["email"], (st, j)
    assert tn.get_lead(lead["id"]) == lead


# ---------------------------------------------------------------- PATCH / ETag


def test_patch_with_if_match_and_stale_version(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Eve", email="eve@example.com")
    path = "/v1/leads/%d" % lead["id"]
    st, h, _ = tn.call("GET", path)
    etag = h["etag"]
    st, h2, j = tn.call("PATCH", path, {"stage": "contacted", "tags": ["warm"]}, {"If-Match": etag})
    assert st == 200, (st, j)
    assert j["stage"] == "contacted" and j["tags"] == ["warm"] and j["version"] == lead["version"] + 1, j
    assert j["first_name"] == "Eve" and j["email"] == "eve@example.com", "PATCH touched other fields: %r" % j
    assert j["updated_at"] >= lead["updated_at"] and j["created_at"] == lead["created_at"], j
    assert h2["etag"] == '"v%d"' % j["version"] != etag, h2
    # the stale ETag is refused and changes nothing
    st, j2 = tn.api("PATCH", path, {"stage": "lost-race"}, {"If-Match": etag})
    assert st == 412 and _err(j2)["code"] == "version_mismatch", (st, j2)
    # so is a stale "version" in the body
    st, j2 = tn.api("PATCH", path, {"stage": "lost-race", "version": lead["version"]})
    assert st == 412, (st, j2)
    assert tn.get_lead(lead["id"])["stage"] == "contacted"
    # the current ETag works; a weak form of it too
    st, j3 = tn.api("PATCH", path, {"stage": "nurture"}, {"If-Match": 'W/"v%d"' % j["version"]})
    assert st == 200 and j3["stage"] == "nurture", (st, j3)
    # garbage in If-Match is a client error, not a silent unconditional write
    st, j4 = tn.api("PATCH", path, {"stage": "x"}, {"If-Match": "abc"})
    assert st == 400, (st, j4)
    assert tn.get_lead(lead["id"])["stage"] == "nurture"
    # without a precondition the write simply goes through
    st, j5 = tn.api("PATCH", path, {"stage": "closed"})
    assert st == 200 and j5["version"] == j3["version"] + 1, (st, j5)


def test_concurrent_patches_with_same_etag_only_one_wins(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Race", email="race@example.com")
    path = "/v1/leads/%d" % lead["id"]
    etag = '"v%d"' % lead["version"]
    results = []
    lock = threading.Lock()

    def worker(i):
        c = Client(tn.srv, tn.key)
        st, j = c.api("PATCH", path, {"stage": "s%d" % i}, {"If-Match": etag})
        with lock:
            results.append((st, i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wins = [i for st, i in results if st == 200]
    assert sorted(st for st, _ in results) == [200] + [412] * 7, results
    final = tn.get_lead(lead["id"])
    assert final["stage"] == "s%d" % wins[0] and final["version"] == lead["version"] + 1, (final, wins)


def test_concurrent_patches_without_if_match_all_apply(t):
    # Without If-Match a PATCH has no precondition: concurrent ones are
    # applied one after the other (last write wins), none is refused with 412.
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Busy", email="busy@example.com")
    path = "/v1/leads/%d" % lead["id"]
    results = []
    lock = threading.Lock()
    go = threading.Event()

    def worker(i):
        c = Client(tn.srv, tn.key)
        go.wait()
        st, j = c.api("PATCH", path, {"tags": ["t%d" % i]})
        with lock:
            results.append(st)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join()
    assert results == [200] * 8, "unconditional PATCHes refused: %r" % results
    final = tn.get_lead(lead["id"])
    assert final["version"] == lead["version"] + 8, final


def test_delete_and_not_found(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Del", email="del@example.com")
    keep = tn.create_lead(first_name="Keep", email="keep@example.com")
    path = "/v1/leads/%d" % lead["id"]
    st, h, b = tn.srv.request("DELETE", path, headers={"Authorization": "Bearer " + tn.key})
    assert st == 204 and b == b"", (st, b)
    for method, body in [("GET", None), ("PATCH", {"stage": "x"}), ("DELETE", None)]:
        st, h, j = tn.call(method, path, body)
        assert st == 404 and _err(j)["code"] == "not_found", (method, st, j)
        assert h["content-type"].startswith("application/json")
    st, j = tn.api("GET", path + "/activities")
    assert st == 404, (st, j)
    st, j = tn.api("POST", path + "/activities", {"channel": "note", "body": "x"})
    assert st == 404, (st, j)
    assert _ids(tn.list_all()) == [keep["id"]]
    assert tn.list_all(email="del@example.com") == []
    for bad in ["/v1/leads/999999999", "/v1/leads/0", "/v1/leads/-1", "/v1/leads/abc"]:
        st, j = tn.api("GET", bad)
        assert st == 404, (bad, st, j)
    types = [e["type"] for e in tn.events()]
    assert "lead.deleted" in types, types
    # the address is free again: a new POST creates a new lead
    st, j = tn.api("POST", "/v1/leads", {"first_name": "Del2", "email": "del@example.com"})
    assert st == 201 and j["id"] != lead["id"], (st, j)


def test_recreate_after_delete_with_same_ghl_contact_id(t):
    # A deleted lead no longer exists: creating one with its GHL contact id
    # again must create a fresh lead, not fail on the old (soft-deleted) row.
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Gone", ghl_contact_id="c_recreate_1")
    assert tn.api("DELETE", "/v1/leads/%d" % lead["id"])[0] == 204
    st, j = tn.api("POST", "/v1/leads", {"first_name": "Back", "ghl_contact_id": "c_recreate_1"})
    assert st == 201 and j["id"] != lead["id"], (st, j)
    assert _ids(tn.list_all(ghl_contact_id="c_recreate_1")) == [j["id"]]


# ---------------------------------------------------------------- upsert


def test_upsert_by_email_phone_and_ghl_id(t):
    tn = Tenant(t)
    st, a = tn.api("POST", "/v1/leads", {"first_name": "Jo", "email": "Jo.Doe@Example.com"})
    assert st == 201, (st, a)
    # same address, other case: the same lead, updated
    st, h, b = tn.call("POST", "/v1/leads", {"email": "jo.doe@EXAMPLE.COM", "last_name": "Doe", "phone": "415 555 0150"})
    assert st == 200 and b["id"] == a["id"], (st, b)
    assert b["first_name"] == "Jo" and b["last_name"] == "Doe" and b["phone"] == "+14155550150", b
    assert b["version"] > a["version"] and h["etag"] == '"v%d"' % b["version"], (b, h)
    # same phone in another spelling, no email: still the same lead
    st, c = tn.api("POST", "/v1/leads", {"phone": "+1 (415) 555-0150", "stage": "contacted"})
    assert st == 200 and c["id"] == a["id"] and c["stage"] == "contacted", (st, c)
    # GHL contact id first
    st, d = tn.api("POST", "/v1/leads", {"ghl_contact_id": "c_up_1", "first_name": "Other"})
    assert st == 201 and d["id"] != a["id"], (st, d)
    st, e = tn.api("POST", "/v1/leads", {"ghl_contact_id": "c_up_1", "email": "other@example.com"})
    assert st == 200 and e["id"] == d["id"] and e["email"] == "other@example.com", (st, e)
    assert sorted(_ids(tn.list_all())) == sorted([a["id"], d["id"]])
    ups = [ev for ev in tn.events("lead.updated")]
    assert len(ups) == 3, ups
    # a GHL contact id belongs to one live lead only
    st, j = tn.api("PATCH", "/v1/leads/%d" % a["id"], {"ghl_contact_id": "c_up_1"})
    assert st == 409 and _err(j)["code"] == "conflict", (st, j)
    assert tn.get_lead(a["id"])["ghl_contact_id"] is None
    # a different person is a different lead
    st, f = tn.api("POST", "/v1/leads", {"email": "someone.else@example.com"})
    assert st == 201 and f["id"] not in (a["id"], d["id"]), (st, f)


def test_same_email_in_two_tenants_is_two_leads(t):
    t1, t2 = Tenant(t), Tenant(t)
    a = t1.create_lead(first_name="Twin", email="twin@example.com", phone="4155550160")
    b = t2.create_lead(first_name="Twin", email="twin@example.com", phone="4155550160")
    assert a["id"] != b["id"]
    # upserting in one tenant does not touch the other's lead
    st, j = t2.api("POST", "/v1/leads", {"email": "twin@example.com", "stage": "t2-only"})
    assert st == 200 and j["id"] == b["id"], (st, j)
    assert t1.get_lead(a["id"])["stage"] == "new"
    assert _ids(t1.list_all(email="twin@example.com")) == [a["id"]]
    assert _ids(t2.list_all(email="twin@example.com")) == [b["id"]]


def test_concurrent_creates_with_same_email_make_one_lead(t):
    # Eight clients post the same new person at once: upsert means one lead,
    # one 201 and seven 200s, on every backend.
    tn = Tenant(t)
    results = []
    lock = threading.Lock()
    go = threading.Event()

    def worker(i):
        c = Client(tn.srv, tn.key)
        go.wait()
        st, j = c.api("POST", "/v1/leads", {"email": "rush@example.com", "tags": ["w%d" % i]})
        with lock:
            results.append((st, j.get("id") if isinstance(j, dict) else None))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join()
    leads = tn.list_all(email="rush@example.com")
    assert len(leads) == 1, "%d leads with one email after concurrent upserts: %r" % (len(leads), results)
    assert 412 not in [st for st, _ in results], "a POST without any precondition answered 412: %r" % results
    assert sorted(st for st, _ in results) == [200] * 7 + [201], results
    assert {i for _, i in results} == {leads[0]["id"]}, results


# ---------------------------------------------------------------- lists


def _seed_filter_leads(tn):
    ag = tn.create_agent("Filter Agent", capacity=100)
    tn.set_routing("off")
    specs = [
        dict(first_name="Zelda", last_name="Quixote", email="zq@alpha.example", phone="4155550142",
             source="Zillow", stage="new", tags=["buyer", "hot"]),
        dict(first_name="Bob", last_name="Stone", email="bob@beta.example", phone="4155550143",
             source="Zillow", stage="contacted", tags=["hot-lead"], agent_id=ag["id"]),
        dict(first_name="Cara", last_name="Quinn", email="cara@gamma.example", phone="2125550144",
             source="Referral", stage="contacted", status="won", tags=["seller"], agent_id=ag["id"]),
        dict(first_name="Dan", last_name="Dune", email="dan@alpha.example", phone="2125550145",
             source="Open House", stage="nurture", status="lost", tags=[]),
        dict(first_name="Émile", last_name="Zola", email="emile@delta.example",
             source="Zillow", stage="new", tags=["buyer"], agent_id=ag["id"]),
    ]
    leads = []
    for s in specs:
        leads.append(tn.create_lead(**s))
        time.sleep(0.003)  # distinct created_at values for the range filters
    return ag, leads


def test_list_filters(t):
    tn = Tenant(t)
    ag, L = _seed_filter_leads(tn)
    zq, bob, cara, dan, emile = L

    def ids(**f):
        return sorted(_ids(tn.list_all(**f)))

    def want(*leads):
        return sorted(x["id"] for x in leads)

    assert ids() == want(*L)
    assert ids(stage="contacted") == want(bob, cara)
    assert ids(status="open") == want(zq, bob, emile)
    assert ids(status="won") == want(cara)
    assert ids(source="Zillow") == want(zq, bob, emile)
    assert ids(source="Open House") == want(dan)
    assert ids(agent_id=ag["id"]) == want(bob, cara, emile)
    assert ids(tag="hot") == want(zq), "tag=hot must not match the tag hot-lead"
    assert ids(tag="buyer") == want(zq, emile)
    assert ids(tag="hot-lead") == want(bob)
    assert ids(tag="nope") == []
    assert ids(email="dan@alpha.example") == want(dan)
    assert ids(phone="+12125550144") == want(cara)
    # q: name (any case), email and phone text
    assert ids(q="quix") == want(zq)
    assert ids(q="QUI") == want(zq, cara)
    assert ids(q="zelda quixote") == want(zq)
    assert ids(q="alpha.example") == want(zq, dan)
    assert ids(q="5550145") == want(dan)
    assert ids(q="nobody-here") == []
    # combinations are ANDed
    assert ids(source="Zillow", stage="new") == want(zq, emile)
    assert ids(source="Zillow", agent_id=ag["id"], tag="buyer") == want(emile)
    assert ids(status="open", q="qui") == want(zq)
    # created ranges (epoch ms; after is inclusive, before exclusive)
    pivot = dan["created_at"]
    assert ids(created_after=pivot) == want(*[x for x in L if x["created_at"] >= pivot])
    assert ids(created_before=pivot) == want(*[x for x in L if x["created_at"] < pivot])
    assert ids(created_after=zq["created_at"], created_before=emile["created_at"]) == \
        want(*[x for x in L if zq["created_at"] <= x["created_at"] < emile["created_at"]])
    assert ids(created_after=emile["created_at"] + 60000) == []
    # updated ranges: touch one lead later
    time.sleep(0.01)
    upd = tn.ok("PATCH", "/v1/leads/%d" % bob["id"], {"stage": "appointment"})
    assert upd["updated_at"] > max(x["updated_at"] for x in L), upd
    assert ids(updated_after=upd["updated_at"]) == want(bob)
    assert ids(updated_before=upd["updated_at"]) == want(zq, cara, dan, emile)
    assert ids(stage="contacted") == want(cara)
    # bad parameters are 400 with a JSON error, not an empty list
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=abc", "cursor=-4", "created_after=yesterday",
                "updated_before=1.5", "agent_id=x", "tag=a%25b", "q=50%25", "score_min=high"]:
        st, j = tn.api("GET", "/v1/leads?" + bad)
        assert st == 400 and _err(j)["code"] == "bad_query", (bad, st, j)


def test_keyset_pagination_newest_first(t):
    tn = Tenant(t)
    tn.set_routing("off")
    made = [tn.create_lead(first_name="P%02d" % i, email="p%02d@page.example" % i)["id"] for i in range(23)]
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/leads?limit=5" + ("&cursor=" + cursor if cursor else "")
        j = tn.ok("GET", path, want=200)
        assert len(j["items"]) <= 5, j
        pages += 1
        seen += _ids(j["items"])
        cursor = j["next_cursor"]
        if not cursor:
            break
        assert len(j["items"]) == 5, "a short page must be the last: %r" % j
    assert pages == 5, pages
    assert seen == sorted(made, reverse=True), (seen, made)
    # default page size is 50, the maximum 500
    j = tn.list_page()
    assert len(j["items"]) == 23 and j["next_cursor"] is None
    j = tn.list_page(limit=500, stage="new")
    assert len(j["items"]) == 23
    # a filter and the cursor together
    first = tn.list_page(limit=3, q="page.example")
    second = tn.list_page(limit=3, q="page.example", cursor=first["next_cursor"])
    assert _ids(first["items"]) + _ids(second["items"]) == sorted(made, reverse=True)[:6]


def test_pagination_stable_while_leads_are_inserted(t):
    # Page through the list while another client keeps inserting: every lead
    # that existed at the start is returned exactly once.
    tn = Tenant(t)
    tn.set_routing("off")
    initial = set()
    lock = threading.Lock()

    def seed(k):
        c = Client(tn.srv, tn.key)
        for i in range(k, 150, 6):
            st, j = c.api("POST", "/v1/leads", {"first_name": "Seed", "email": "seed%03d@stable.example" % i})
            assert st == 201, (st, j)
            with lock:
                initial.add(j["id"])

    seeders = [threading.Thread(target=seed, args=(k,)) for k in range(6)]
    for s in seeders:
        s.start()
    for s in seeders:
        s.join()
    assert len(initial) == 150

    stop = threading.Event()
    inserted = []
    errors = []

    def inserter(k):
        c = Client(tn.srv, tn.key)
        n = 0
        while not stop.is_set():
            st, j = c.api("POST", "/v1/leads", {"first_name": "Late", "email": "late%d-%04d@stable.example" % (k, n)})
            n += 1
            if st != 201:
                errors.append((st, j))
                return
            inserted.append(j["id"])

    threads = [threading.Thread(target=inserter, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    seen, cursor = [], None
    try:
        while True:
            j = tn.list_page(limit=7, **({"cursor": cursor} if cursor else {}))
            page = _ids(j["items"])
            assert page == sorted(page, reverse=True), page
            seen += page
            cursor = j["next_cursor"]
            if not cursor:
                break
            time.sleep(0.005)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors
    assert inserted, "the inserters made no lead while the list was paged"
    dup = {i for i in seen if seen.count(i) > 1}
    assert not dup, "returned twice: %r" % sorted(dup)
    missing = initial - set(seen)
    assert not missing, "skipped: %r" % sorted(missing)
    assert seen == sorted(seen, reverse=True), "pages overlap or go back"


# ---------------------------------------------------------------- activities


def test_activities_add_and_list(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Act", email="act@example.com")
    path = "/v1/leads/%d/activities" % lead["id"]
    st, h, a1 = tn.call("POST", path, {"channel": "sms", "direction": "inbound", "body": "Is it still available?",
                                      "status": "received", "provider_message_id": "SM123",
                                      "occurred_at": 1700000000000})
    assert st == 201, (st, a1)
    assert (a1["lead_id"], a1["channel"], a1["direction"], a1["body"], a1["status"], a1["provider_message_id"],
            a1["occurred_at"]) == (lead["id"], "sms", "inbound", "Is it still available?", "received", "SM123",
                                   1700000000000), a1
    a2 = tn.ok("POST", path, {"channel": "note", "body": "called back"})
    assert a2["direction"] == "none" and a2["occurred_at"] > 0, a2
    made = [a1["id"], a2["id"]]
    for i in range(5):
        made.append(tn.ok("POST", path, {"channel": "call", "direction": "outbound", "body": "try %d" % i})["id"])
    items = tn.list_all(path)
    assert _ids(items) == sorted(made, reverse=True), items
    assert all(x["lead_id"] == lead["id"] for x in items)
    # pages of 3
    j = tn.list_page(path, limit=3)
    j2 = tn.list_page(path, limit=3, cursor=j["next_cursor"])
    assert _ids(j["items"]) + _ids(j2["items"]) == sorted(made, reverse=True)[:6]
    # another lead's activities are separate
    other = tn.create_lead(first_name="Other", email="other@example.com")
    assert tn.list_all("/v1/leads/%d/activities" % other["id"]) == []
    # validation
    for body, field in [({"channel": "fax"}, "channel"), ({"body": "x"}, "channel"),
                        ({"channel": "sms", "direction": "sideways"}, "direction"),
                        ({"channel": "sms", "occurred_at": "yesterday"}, "occurred_at"),
                        ({"channel": "sms", "body": 5}, "body"),
                        ({"channel": "sms", "colour": "red"}, "colour")]:
        st, j = tn.api("POST", path, body)
        assert st == 422 and field in _err(j)["fields"], (body, st, j)
    assert len(tn.list_all(path)) == 7
    for bad in ["limit=0", "limit=501", "cursor=x"]:
        st, j = tn.api("GET", path + "?" + bad)
        assert st == 400, (bad, st, j)
    # events: activity.created, without the message body
    evs = tn.events("activity.created")
    assert len(evs) == 7, evs
    assert all("body" not in e["payload"] for e in evs), evs
    assert {e["payload"]["lead_id"] for e in evs} == {lead["id"]}


# ---------------------------------------------------------------- agents / listings


def test_agents_crud(t):
    tn = Tenant(t)
    st, h, a = tn.call("POST", "/v1/agents", {"name": "Alice Agent", "email": "Alice@Team.example",
                                             "phone": "(415) 555-0170", "capacity": 12, "areas": ["94110", "94103"],
                                             "languages": ["en", "es"], "ghl_user_id": "u_alice"})
    assert st == 201, (st, a)
    assert a["email"] == "alice@team.example" and a["phone"] == "+14155550170", a
    assert a["active"] is True and a["capacity"] == 12 and a["areas"] == ["94110", "94103"], a
    assert h["location"] == "/v1/agents/%d" % a["id"] and h["etag"] == '"v%d"' % a["version"], h
    b = tn.create_agent("Bob Agent", active=False)
    assert b["active"] is False
    assert tn.ok("GET", "/v1/agents/%d" % a["id"], want=200) == a
    assert sorted(_ids(tn.list_all("/v1/agents"))) == sorted([a["id"], b["id"]])
    assert _ids(tn.list_all("/v1/agents", active="false")) == [b["id"]]
    assert _ids(tn.list_all("/v1/agents", ghl_user_id="u_alice")) == [a["id"]]
    # PATCH with If-Match
    st, h, a2 = tn.call("PATCH", "/v1/agents/%d" % a["id"], {"capacity": 20}, {"If-Match": h["etag"]})
    assert st == 200 and a2["capacity"] == 20 and a2["version"] == a["version"] + 1, (st, a2)
    assert a2["name"] == "Alice Agent" and a2["languages"] == ["en", "es"], a2
    st, j = tn.api("PATCH", "/v1/agents/%d" % a["id"], {"capacity": 1}, {"If-Match": '"v%d"' % a["version"]})
    assert st == 412, (st, j)
    # validation
    for body, field in [({}, "name"), ({"name": "X", "capacity": -1}, "capacity"),
                        ({"name": "X", "capacity": "ten"}, "capacity"), ({"name": "X", "email": "nope"}, "email"),
                        ({"name": "X", "areas": "94110"}, "areas"), ({"name": None}, "name")]:
        st, j = tn.api("POST", "/v1/agents", body)
        assert st == 422 and field in _err(j)["fields"], (body, st, j)
    # the GHL user id is unique among live agents
    st, j = tn.api("POST", "/v1/agents", {"name": "Copy", "ghl_user_id": "u_alice"})
    assert st == 409, (st, j)
    # delete
    assert tn.api("DELETE", "/v1/agents/%d" % b["id"])[0] == 204
    for m in ["GET", "PATCH", "DELETE"]:
        st, j = tn.api(m, "/v1/agents/%d" % b["id"], {"name": "x"} if m == "PATCH" else None)
        assert st == 404, (m, st, j)
    assert _ids(tn.list_all("/v1/agents")) == [a["id"]]
    types = [e["type"] for e in tn.events()]
    for ty in ["agent.created", "agent.updated", "agent.deleted"]:
        assert ty in types, (ty, types)


def test_listings_crud(t):
    tn = Tenant(t)
    st, h, l1 = tn.call("POST", "/v1/listings", {
        "address": "1 Market St", "city": "San Francisco", "state": "CA", "zip": "94105", "lat": 37.79,
        "lng": -122.39, "price": 1250000, "beds": 2, "baths": 2, "sqft": 1100, "type": "condo",
        "status": "active", "external_id": "mls-1"})
    assert st == 201, (st, l1)
    assert (l1["city"], l1["zip"], l1["price"], l1["lat"], l1["status"]) == ("San Francisco", "94105", 1250000,
                                                                           37.79, "active"), l1
    l2 = tn.ok("POST", "/v1/listings", {"address": "9 Oak Ave", "city": "Oakland", "status": "pending"})
    assert tn.ok("GET", "/v1/listings/%d" % l1["id"], want=200) == l1
    assert _ids(tn.list_all("/v1/listings", city="Oakland")) == [l2["id"]]
    assert _ids(tn.list_all("/v1/listings", status="active")) == [l1["id"]]
    assert sorted(_ids(tn.list_all("/v1/listings"))) == sorted([l1["id"], l2["id"]])
    st, h, j = tn.call("PATCH", "/v1/listings/%d" % l1["id"], {"status": "sold", "price": 1300000},
                       {"If-Match": h["etag"]})
    assert st == 200 and j["status"] == "sold" and j["price"] == 1300000 and j["city"] == "San Francisco", (st, j)
    st, j = tn.api("PATCH", "/v1/listings/%d" % l1["id"], {"price": 1}, {"If-Match": '"v%d"' % l1["version"]})
    assert st == 412, (st, j)
    for body, field in [({"city": "No Address"}, "address"), ({"address": "x", "lat": 91}, "lat"),
                        ({"address": "x", "lng": -181}, "lng"), ({"address": "x", "status": "gone"}, "status"),
                        ({"address": "x", "price": "cheap"}, "price")]:
        st, j = tn.api("POST", "/v1/listings", body)
        assert st == 422 and field in _err(j)["fields"], (body, st, j)
    st, j = tn.api("POST", "/v1/listings", {"address": "dup", "external_id": "mls-1"})
    assert st == 409, (st, j)
    assert tn.api("DELETE", "/v1/listings/%d" % l1["id"])[0] == 204
    assert tn.api("GET", "/v1/listings/%d" % l1["id"])[0] == 404
    assert _ids(tn.list_all("/v1/listings")) == [l2["id"]]
    # once deleted, its MLS id may be used again
    st, j = tn.api("POST", "/v1/listings", {"address": "1 Market St", "external_id": "mls-1"})
    assert st == 201, (st, j)


# ---------------------------------------------------------------- routing


def _assigned(tn):
    return [(e["payload"]["lead_id"], e["payload"]["agent_id"], e["payload"]["reason"])
            for e in tn.events("lead.assigned")]


def test_round_robin_routing(t):
    tn = Tenant(t)
    agents = [tn.create_agent("RR %d" % i, capacity=10)["id"] for i in range(3)]
    got = []
    for i in range(6):
        lead = tn.create_lead(first_name="RR", email="rr%d@example.com" % i)
        assert lead["agent_id"] in agents, lead
        assert tn.get_lead(lead["id"])["agent_id"] == lead["agent_id"]
        got.append(lead["agent_id"])
        time.sleep(0.002)
    assert sorted(got[:3]) == sorted(agents), "each agent once before anyone twice: %r" % got
    assert got[3:] == got[:3], "the same rotation again: %r" % got
    ev = _assigned(tn)
    assert [a for _, a, _ in ev] == got, ev
    for _, _, reason in ev:
        assert reason.startswith("new lead; round robin") and "load" in reason, reason
    # the second lap shows one open lead per agent
    assert all(r.endswith("load 1/10") for _, _, r in ev[3:]), ev


def test_least_loaded_routing(t):
    tn = Tenant(t, settings={"routing_mode": "least_loaded"})
    big = tn.create_agent("Big", capacity=10)
    small = tn.create_agent("Small", capacity=2)
    # Big already carries 4 open leads (assigned by hand): 0.4 against Small's 0.0
    for i in range(4):
        tn.create_lead(first_name="Pre", email="pre%d@example.com" % i, agent_id=big["id"])
    # [open leads, capacity, when last routed to]; ties on load go to the
    # least recently assigned
    loads = {big["id"]: [4, 10, 0], small["id"]: [0, 2, 0]}
    for i in range(6):
        free = [a for a in loads if loads[a][0] < loads[a][1]]
        want = min(free, key=lambda a: (loads[a][0] / loads[a][1], loads[a][2], a))
        lead = tn.create_lead(first_name="LL", email="ll%d@example.com" % i)
        assert lead["agent_id"] == want, (i, lead["agent_id"], want, loads)
        loads[want][0] += 1
        loads[want][2] = i + 1
        time.sleep(0.002)
    assert loads[small["id"]][0] <= 2
    reasons = [r for _, _, r in _assigned(tn) if "least loaded" in r]
    assert len(reasons) == 6, _assigned(tn)


def test_routing_off_leaves_leads_unassigned(t):
    tn = Tenant(t)
    tn.create_agent("Idle", capacity=10)
    tn.set_routing("off")
    st, j = tn.api("GET", "/v1/settings")
    assert j["routing_mode"] == "off"
    lead = tn.create_lead(first_name="Off", email="off@example.com")
    assert lead["agent_id"] is None, lead
    assert tn.get_lead(lead["id"])["agent_id"] is None
    assert _assigned(tn) == []
    # switching back on routes the next lead
    tn.set_routing("round_robin")
    lead2 = tn.create_lead(first_name="On", email="on@example.com")
    assert lead2["agent_id"] is not None, lead2
    st, j = tn.api("PATCH", "/v1/settings", {"routing_mode": "random"})
    assert st == 422 and "routing_mode" in _err(j)["fields"], (st, j)


def test_capacity_limits_are_honoured(t):
    tn = Tenant(t)
    a = tn.create_agent("Cap1", capacity=1)
    b = tn.create_agent("Cap2", capacity=2)
    tn.create_agent("Zero", capacity=0)
    tn.create_agent("Inactive", capacity=50, active=False)
    leads = [tn.create_lead(first_name="C", email="cap%d@example.com" % i) for i in range(5)]
    per = {}
    for l in leads[:3]:
        per[l["agent_id"]] = per.get(l["agent_id"], 0) + 1
    assert per == {a["id"]: 1, b["id"]: 2}, per
    for l in leads[3:]:
        assert l["agent_id"] is None, "everyone is full, yet: %r" % l
    un = tn.events("lead.unassigned")
    assert [e["payload"]["lead_id"] for e in un] == [leads[3]["id"], leads[4]["id"]], un
    assert all("no active agent with free capacity" in e["payload"]["reason"] for e in un), un
    # a closed lead frees its agent's slot
    held_by_a = [l for l in leads if l["agent_id"] == a["id"]][0]
    tn.ok("PATCH", "/v1/leads/%d" % held_by_a["id"], {"status": "won"})
    nxt = tn.create_lead(first_name="C", email="cap-next@example.com")
    assert nxt["agent_id"] == a["id"], nxt
    nxt2 = tn.create_lead(first_name="C", email="cap-next2@example.com")
    assert nxt2["agent_id"] is None, nxt2


def test_capacity_holds_under_concurrent_creates(t):
    # Many leads arriving at once must not push an agent past capacity.
    tn = Tenant(t)
    a = tn.create_agent("Solo", capacity=3)
    go = threading.Event()
    out = []
    lock = threading.Lock()

    def worker(i):
        c = Client(tn.srv, tn.key)
        go.wait()
        st, j = c.api("POST", "/v1/leads", {"first_name": "Burst", "email": "burst%02d@example.com" % i})
        with lock:
            out.append((st, j))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join()
    assert all(st == 201 for st, _ in out), out
    held = tn.list_all(agent_id=a["id"])
    assert len(held) == 3, "agent with capacity 3 holds %d open leads" % len(held)
    assert len(tn.list_all()) == 12


def test_area_and_language_preference(t):
    tn = Tenant(t)
    area = tn.create_agent("Mission", capacity=50, areas=["94110"])
    lang = tn.create_agent("Hablo", capacity=50, languages=["es"])
    plain = tn.create_agent("Plain", capacity=50)
    # area beats round robin, every time
    for i in range(3):
        l = tn.create_lead(first_name="A", email="area%d@example.com" % i, areas=["94110"])
        assert l["agent_id"] == area["id"], (i, l)
    # language beats round robin ("es-MX" is Spanish)
    for i, lg in enumerate(["es", "es-MX"]):
        l = tn.create_lead(first_name="L", email="lang%d@example.com" % i, language=lg)
        assert l["agent_id"] == lang["id"], (lg, l)
    # area beats language
    both = tn.create_agent("Both", capacity=50, languages=["es"])
    l = tn.create_lead(first_name="B", email="both@example.com", areas=["94110"], language="es")
    assert l["agent_id"] == area["id"], l
    # an area nobody covers: plain round robin among all
    # an area nobody covers: round robin among all -- the agents never
    # assigned yet come first
    l = tn.create_lead(first_name="N", email="none@example.com", areas=["10001"])
    assert l["agent_id"] in (plain["id"], both["id"]), l
    reasons = {lid: r for lid, _, r in _assigned(tn)}
    area_leads = [x["id"] for x in tn.list_all(agent_id=area["id"])]
    assert len(area_leads) == 4, area_leads
    assert all("covers the lead's area" in reasons[i] for i in area_leads), reasons
    lang_leads = [x["id"] for x in tn.list_all(agent_id=lang["id"])]
    assert any("speaks the lead's language" in reasons[i] for i in lang_leads), reasons
    # a full preferred agent is passed over
    tn.ok("PATCH", "/v1/agents/%d" % area["id"], {"capacity": 4})
    l = tn.create_lead(first_name="F", email="full@example.com", areas=["94110"])
    assert l["agent_id"] not in (None, area["id"]), l


def test_deactivating_or_deleting_an_agent_reroutes_open_leads(t):
    tn = Tenant(t)
    a = tn.create_agent("Leaving", capacity=10)
    open_leads = [tn.create_lead(first_name="O", email="o%d@example.com" % i, agent_id=a["id"]) for i in range(3)]
    won = tn.create_lead(first_name="W", email="won@example.com", agent_id=a["id"], status="won")
    b = tn.create_agent("Staying", capacity=2)
    c = tn.create_agent("Also", capacity=10, active=False)
    tn.ok("PATCH", "/v1/agents/%d" % a["id"], {"active": False})
    now = {l["id"]: tn.get_lead(l["id"])["agent_id"] for l in open_leads}
    # B takes two (its capacity), the third finds nobody
    assert sorted(now.values(), key=str) == sorted([b["id"], b["id"], None], key=str), now
    assert tn.get_lead(won["id"])["agent_id"] == a["id"], "a closed lead keeps its agent"
    moved = [x for x in _assigned(tn) if "reassigned" in x[2]]
    assert sorted(x[0] for x in moved) == sorted(k for k, v in now.items() if v == b["id"]), moved
    assert all(x[1] == b["id"] and "deactivated" in x[2] for x in moved), moved
    un = [e["payload"] for e in tn.events("lead.unassigned")]
    assert [u["lead_id"] for u in un] == [k for k, v in now.items() if v is None], un
    assert "reassigned" in un[0]["reason"], un
    # deleting B re-routes its leads to the agent activated meanwhile
    tn.ok("PATCH", "/v1/agents/%d" % c["id"], {"active": True})
    assert tn.api("DELETE", "/v1/agents/%d" % b["id"])[0] == 204
    for lid, was in now.items():
        if was == b["id"]:
            assert tn.get_lead(lid)["agent_id"] == c["id"], tn.get_lead(lid)
    assert tn.list_all(agent_id=b["id"]) == []


def test_unassignment_by_rerouting_changes_the_lead_version(t):
    # When its agent is deactivated and nobody can take it, a lead loses its
    # agent: that is a change, so its version (ETag) and updated_at move, and
    # a PATCH holding the old ETag gets 412 instead of silently winning.
    tn = Tenant(t)
    a = tn.create_agent("Only", capacity=5)
    lead = tn.create_lead(first_name="U", email="unassigned@example.com")
    assert lead["agent_id"] == a["id"], lead
    before = tn.get_lead(lead["id"])
    time.sleep(0.005)
    tn.ok("PATCH", "/v1/agents/%d" % a["id"], {"active": False})
    after = tn.get_lead(lead["id"])
    assert after["agent_id"] is None, after
    assert after["version"] > before["version"], "agent_id changed but the version stayed %d" % after["version"]
    assert after["updated_at"] > before["updated_at"], (before["updated_at"], after["updated_at"])
    assert tn.list_all(updated_after=before["updated_at"] + 1) != [], "the change is invisible to updated_after"
    st, j = tn.api("PATCH", "/v1/leads/%d" % lead["id"], {"stage": "x"}, {"If-Match": '"v%d"' % before["version"]})
    assert st == 412, (st, j)


def test_manual_assignment_is_checked_and_logged(t):
    t1, t2 = Tenant(t), Tenant(t)
    t1.set_routing("off")
    mine = t1.create_agent("Mine", capacity=5)
    theirs = t2.create_agent("Theirs", capacity=5)
    lead = t1.create_lead(first_name="M", email="manual@example.com")
    st, j = t1.api("PATCH", "/v1/leads/%d" % lead["id"], {"agent_id": mine["id"]})
    assert st == 200 and j["agent_id"] == mine["id"], (st, j)
    ev = _assigned(t1)
    assert ev == [(lead["id"], mine["id"], "assigned by hand")], ev
    # another tenant's agent (or none at all) cannot be referenced
    for bad in [theirs["id"], 987654321]:
        st, j = t1.api("PATCH", "/v1/leads/%d" % lead["id"], {"agent_id": bad})
        assert st == 422, (bad, st, j)
        st, j = t1.api("POST", "/v1/leads", {"first_name": "N", "email": "n%d@example.com" % bad, "agent_id": bad})
        assert st == 422, (bad, st, j)
    assert t1.get_lead(lead["id"])["agent_id"] == mine["id"]
    assert len(t1.list_all()) == 1


def test_unassigning_by_hand_logs_lead_unassigned(t):
    # Taking a lead's agent away is an unassignment: the log says
    # lead.unassigned with a reason, not "lead.assigned" to nobody.
    tn = Tenant(t)
    a = tn.create_agent("Temp", capacity=5)
    lead = tn.create_lead(first_name="H", email="hand@example.com")
    assert lead["agent_id"] == a["id"], lead
    st, j = tn.api("PATCH", "/v1/leads/%d" % lead["id"], {"agent_id": None})
    assert st == 200 and j["agent_id"] is None, (st, j)
    bogus = [e["payload"] for e in tn.events("lead.assigned") if e["payload"].get("agent_id") is None]
    assert not bogus, "lead.assigned without an agent: %r" % bogus
    un = [e["payload"] for e in tn.events("lead.unassigned")]
    assert [u["lead_id"] for u in un] == [lead["id"]] and un[0].get("reason"), un


# ---------------------------------------------------------------- tenants and roles


def test_cross_tenant_access_is_not_found(t):
    ta, tb = Tenant(t), Tenant(t)
    b_lead = tb.create_lead(first_name="Secret", email="secret@b.example")
    b_agent = tb.create_agent("B agent")
    b_listing = tb.ok("POST", "/v1/listings", {"address": "B street"})
    tb.ok("POST", "/v1/leads/%d/activities" % b_lead["id"], {"channel": "note", "body": "private"})
    ta.create_lead(first_name="Mine", email="mine@a.example")
    lp = "/v1/leads/%d" % b_lead["id"]
    attempts = [("GET", lp, None), ("PATCH", lp, {"first_name": "Pwned"}), ("DELETE", lp, None),
                ("GET", lp + "/activities", None), ("POST", lp + "/activities", {"channel": "note", "body": "x"}),
                ("GET", "/v1/agents/%d" % b_agent["id"], None), ("PATCH", "/v1/agents/%d" % b_agent["id"], {"capacity": 0}),
                ("DELETE", "/v1/agents/%d" % b_agent["id"], None),
                ("GET", "/v1/listings/%d" % b_listing["id"], None), ("DELETE", "/v1/listings/%d" % b_listing["id"], None)]
    for m, p, body in attempts:
        st, j = ta.api(m, p, body)
        assert st == 404 and _err(j)["code"] == "not_found", (m, p, st, j)
    assert tb.get_lead(b_lead["id"]) == b_lead
    assert tb.ok("GET", "/v1/agents/%d" % b_agent["id"], want=200)["capacity"] == b_agent["capacity"]
    assert len(tb.list_all("/v1/leads/%d/activities" % b_lead["id"])) == 1
    assert b_lead["id"] not in _ids(ta.list_all())
    assert ta.list_all(email="secret@b.example") == [] and ta.list_all(q="secret") == []
    # upsert in A with B's email makes A's own lead, never B's
    st, j = ta.api("POST", "/v1/leads", {"email": "secret@b.example", "first_name": "A-side"})
    assert st == 201 and j["id"] != b_lead["id"], (st, j)
    assert tb.get_lead(b_lead["id"])["first_name"] == "Secret"
    assert "Secret" not in ta.srv.request("GET", "/v1/leads/export.csv",
                                          headers={"Authorization": "Bearer " + ta.key})[2].decode()


def test_authentication_required(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Auth", email="auth@example.com")
    for hdr in [{}, {"Authorization": "Bearer ehk_" + "0" * 40}, {"Authorization": "Bearer " + tn.key[:-1] + "x"},
                {"X-API-Key": "nope"}]:
        st, h, b = t.srv.request("GET", "/v1/leads/%d" % lead["id"], headers=hdr)
        assert st == 401, (hdr, st, b)
        assert b'"code":"' in b and "www-authenticate" in h, (h, b)
    st, h, b = t.srv.request("GET", "/v1/leads/%d" % lead["id"], headers={"X-API-Key": tn.key})
    assert st == 200, (st, b)


def test_roles(t):
    tn = Tenant(t)
    lead = tn.create_lead(first_name="Role", email="role@example.com")
    agent = tn.create_agent("Role agent")
    lp = "/v1/leads/%d" % lead["id"]
    ap = "/v1/agents/%d" % agent["id"]
    reads = [("GET", "/v1/leads", None), ("GET", lp, None), ("GET", lp + "/activities", None),
             ("GET", "/v1/agents", None), ("GET", ap, None), ("GET", "/v1/listings", None),
             ("GET", "/v1/settings", None)]
    lead_writes = [("POST", "/v1/leads", {"first_name": "W", "email": "w-%s@example.com"}),
                   ("PATCH", lp, {"stage": "by-%s"}), ("POST", lp + "/activities", {"channel": "note", "body": "%s"})]
    manage = [("POST", "/v1/agents", {"name": "new by %s"}), ("PATCH", ap, {"capacity": 7}),
              ("POST", "/v1/listings", {"address": "addr %s"})]
    admin = [("PATCH", "/v1/settings", {"default_country": "US"})]

    def fill(body, role):
        if body is None:
            return None
        return {k: (v % role if isinstance(v, str) and "%s" in v else v) for k, v in body.items()}

    matrix = {"viewer": (True, False, False, False), "analyst": (True, False, False, False),
              "agent": (True, True, False, False), "manager": (True, True, True, False)}
    for role, (r, lw, mg, ad) in matrix.items():
        c = tn.role_client(role)
        for group, allowed in [(reads, r), (lead_writes, lw), (manage, mg), (admin, ad)]:
            for m, p, body in group:
                st, j = c.api(m, p, fill(body, role))
                if allowed:
                    assert st in (200, 201), (role, m, p, st, j)
                else:
                    assert st == 403 and _err(j)["code"] == "forbidden", (role, m, p, st, j)
        # delete: managers (and admins) only
        victim = tn.create_lead(first_name="Victim", email="victim-%s@example.com" % role)
        st, j = c.api("DELETE", "/v1/leads/%d" % victim["id"])
        assert st == (204 if role == "manager" else 403), (role, st, j)
        st, j = c.api("DELETE", "/v1/agents/%d" % tn.create_agent("Tmp " + role)["id"])
        assert st == (204 if role == "manager" else 403), (role, st, j)
    # nothing a refused role tried is stored
    names = {x["first_name"] for x in tn.list_all()}
    assert "W" in names  # agent and manager
    emails = {x["email"] for x in tn.list_all()}
    assert "w-viewer@example.com" not in emails and "w-analyst@example.com" not in emails, emails
    assert "w-agent@example.com" in emails and "w-manager@example.com" in emails, emails
    agents = {x["name"] for x in tn.list_all("/v1/agents")}
    assert "new by manager" in agents and "new by agent" not in agents and "new by viewer" not in agents, agents
    # a key of one tenant is only ever that tenant's
    other = Tenant(t)
    st, j = other.api("GET", lp)
    assert st == 404, (st, j)
