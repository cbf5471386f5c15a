"""Independent Artemis clients against `outpost-sim hikcentral`.

Usage: hikcentral_peers.py HOST PORT APP_KEY APP_SECRET

1. PyPI `hikvision-openapi-signer` 1.0.0 (forms C/D: Content-MD5, Date, nonce, timestamp,
   Title-Case X-Ca-Signature-Headers) over httpx: version, an org list with a query string,
   a person added; then the same signed request replayed (must be refused) and a body changed
   after signing (must be refused).
2. PyPI `hikcentral-openapi` 0.1.2 (form B: x-ca-key only) through its own client: version, orgs,
   access levels, add a person, read it, upload a face, assign and unassign an access level,
   delete the person.

Prints one JSON line with what happened; exits 1 if any expectation failed.
"""

import asyncio
import base64
import json
import sys

import httpx
from hikvision_openapi_signer import HikvisionOpenAPISigner
from hikcentral_openapi import Client
from hikcentral_openapi.models import Person

host, port, key, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
base = f"https://{host}:{port}"
report = {"signer": {}, "client": {}, "failures": []}


def expect(cond, what):
    if not cond:
        report["failures"].append(what)


async def signer_flow():
    signer = HikvisionOpenAPISigner(base, key, secret)
    async with httpx.AsyncClient(verify=False) as http:
        method, url, headers, body = signer.sign(
            "POST", "/api/common/v1/version", jsons={}, accept="application/json")
        r = await http.request(method, url, headers=headers, content=body)
        report["signer"]["version"] = r.json()
        expect(r.status_code == 200 and r.json()["code"] == "0", "signer: version accepted")

        method, url, headers, body = signer.sign(
            "POST", "/api/resource/v1/org/advance/orgList",
            querys={"pageNo": 1, "pageSize": 10}, jsons={"pageNo": 1, "pageSize": 10},
            accept="application/json")
        r = await http.request(method, url, headers=headers, content=body)
        report["signer"]["orgList"] = r.json()["code"]
        expect(r.status_code == 200 and r.json()["code"] == "0", "signer: orgList with query accepted")

        person = {"personCode": "PYSIGN1", "personFamilyName": "Signer", "personGivenName": "Py",
                  "orgIndexCode": "1", "beginTime": "2030-01-01T09:00:00+00:00",
                  "endTime": "2030-01-01T18:00:00+00:00"}
        method, url, headers, body = signer.sign(
            "POST", "/api/resource/v1/person/single/add", jsons=person, accept="application/json")
        r = await http.request(method, url, headers=headers, content=body)
        report["signer"]["add"] = r.json()
        expect(r.status_code == 200 and r.json()["code"] == "0", "signer: person added")

        r = await http.request(method, url, headers=headers, content=body)
        report["signer"]["replay"] = [r.status_code, r.json()]
        expect(r.status_code == 401, "signer: replayed nonce refused")

        method, url, headers, body = signer.sign(
            "POST", "/api/resource/v1/person/personCode/personInfo",
            jsons={"personCode": "PYSIGN1"}, accept="application/json")
        tampered = body.replace("PYSIGN1", "PYSIGN2")
        r = await http.request(method, url, headers=headers, content=tampered)
        report["signer"]["tampered"] = [r.status_code, r.json()]
        expect(r.status_code == 401, "signer: tampered body refused")

        r = await http.request(method, url, headers=headers, content=body)
        expect(r.status_code == 200 and r.json()["code"] == "0", "signer: untampered lookup accepted")


async def client_flow():
    client = Client(user_key=key, user_secret=secret, host=host, port=port)
    await client.initialize()
    report["client"]["version"] = client.version
    expect(bool(client.version), "client: version read")
    orgs = await client.get_organization()
    expect(len(orgs) >= 1, "client: orgs listed")
    levels = await client.get_access_level()
    report["client"]["levels"] = [l.access_level_id for l in levels]
    expect(len(levels) >= 1, "client: access levels listed")
    person_id = await client.add_person(Person(
        personCode="PYCLIENT1", personFamilyName="Client", personGivenName="Py",
        orgIndexCode=orgs[0].org_id))
    report["client"]["personId"] = person_id
    got = await client.get_person(person_id=person_id)
    expect(got[0].person_code == "PYCLIENT1", "client: person read back")
    face = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9").decode()
    await client.update_person_face(person_id, face)
    got = await client.get_person(person_id=person_id)
    expect(bool(got[0].person_photo and got[0].person_photo.pic_uri), "client: face stored")
    await client.assign_access_level(levels[0], [person_id])
    await client.unassign_access_level(levels[0], [person_id])
    await client.delete_person(person_id)
    report["client"]["done"] = True


async def main():
    try:
        await signer_flow()
    except Exception as e:  # noqa: BLE001 - the report says what broke
        report["failures"].append(f"signer raised {type(e).__name__}: {e}")
    try:
        await client_flow()
    except Exception as e:  # noqa: BLE001
        report["failures"].append(f"client raised {type(e).__name__}: {e}")
    print(json.dumps(report))
    sys.exit(1 if report["failures"] else 0)


asyncio.run(main())
