"""Routing and station behaviour, independent of the HTTP server that carries it."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import urllib.parse
from typing import Any

from rspy_batch.simulator.auth import TokenStore, station_credentials
from rspy_batch.simulator.catalog import StationCatalog
from rspy_batch.simulator.config import DEFAULT_STATIONS, REDIRECT_STATION, SimConfig
from rspy_batch.simulator.detrand import digest, unit
from rspy_batch.simulator.faults import TransientFaults
from rspy_batch.simulator.odata_filter import FilterError, compile_filter
from rspy_batch.simulator.orders import OrderBook
from rspy_batch.simulator.query import QueryOptions, parse_options, parse_orderby, sort_entities
from rspy_batch.simulator.records import Record
from rspy_batch.simulator.stats import Stats
from rspy_batch.simulator.wire import Request, Response, json_response, message, odata_error

_ENTITY = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<id>[^)]*)\))?(?P<rest>(?:/.*)?)$")
_SETS = {
    "cadip": ("Sessions", "Files", "QualityInfo"),
    "auxip": ("Products",),
    "prip": ("Products",),
    "lta": ("Products", "Orders"),
}
_ORDER_SCHEMA = frozenset(
    (
        "Id",
        "Status",
        "StatusMessage",
        "OrderSize",
        "SubmissionDate",
        "EstimatedDate",
        "CompletedDate",
        "EvictionDate",
        "Priority",
    )
)
_LISTING_FAULTS = ("http-5xx", "http-429", "malformed-json", "slow")
_DOWNLOAD_FAULTS = ("http-5xx", "http-429", "truncate", "slow")
_OTHER_FAULTS = ("http-5xx", "http-429", "slow")
_SIGNED_URL_TTL = 300  # seconds a redirect target URL stays valid


class App:
    """All simulated stations behind one request handler."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stations = {sid: DEFAULT_STATIONS[sid] for sid in config.stations}
        self.catalogs = {sid: StationCatalog(config, st) for sid, st in self.stations.items()}
        self.credentials = {sid: station_credentials(config.seed, sid) for sid in self.stations}
        self.tokens = TokenStore(config.effective_token_ttl, config.refresh_ttl)
        self.orders = {
            sid: OrderBook(config.seed, config.order_delay)
            for sid, st in self.stations.items()
            if st.service == "lta"
        }
        self.faults = TransientFaults(config.faults, config.seed)
        self.stats = Stats()
        self.base_url = ""  # set once the listeners are bound
        self.other_url = ""
        self._sign_key = digest(config.seed, "redirect-signing-key")

    # -- entry point ------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/", 1)
        head, rest = parts[0], parts[1] if len(parts) > 1 else ""
        if req.listener == "other":
            resp = self._signed_download(req, head, rest)
            self.stats.count_request(f"{head}:redirect", resp.status)
            return resp
        if head == "_sim":
            return self._admin(rest)
        if head not in self.stations:
            return odata_error(404, "NotFound", f"no station {head!r}")
        resp = self._station(req, head, rest)
        self.stats.count_request(head, resp.status)
        return resp

    # -- admin --------------------------------------------------------------------
    def _admin(self, rest: str) -> Response:
        if rest == "stats":
            snap = self.stats.snapshot()
            snap["tokens_issued"] = dict(self.tokens.issued)
            return json_response(200, snap)
        if rest.startswith("truth/"):
            sid = rest.removeprefix("truth/")
            if sid not in self.catalogs:
                return odata_error(404, "NotFound", f"no station {sid!r}")
            return json_response(200, self.catalogs[sid].truth())
        return odata_error(404, "NotFound", f"no admin route {rest!r}")

    # -- one station --------------------------------------------------------------
    def _station(self, req: Request, sid: str, rest: str) -> Response:
        if rest == "health" and req.method == "GET":
            return json_response(200, {"status": "healthy"})
        if rest == "oauth2/token":
            if req.method != "POST":
                return odata_error(405, "MethodNotAllowed", "use POST")
            form = dict(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace")))
            status, body = self.tokens.grant(sid, form, self.credentials[sid])
            return json_response(status, body)
        redirect_prefix = "Redirect/"
        if rest.startswith("odata/v1"):
            odata_path = rest.removeprefix("odata/v1").strip("/")
        elif sid == REDIRECT_STATION and rest.startswith(redirect_prefix):
            odata_path = rest.removeprefix(redirect_prefix)
        else:
            return odata_error(404, "NotFound", f"no route {req.path!r}")

        is_download = odata_path.endswith("/$value")
        is_listing = bool(re.fullmatch(r"[A-Za-z]+", odata_path)) and req.method == "GET"
        kinds = _OTHER_FAULTS
        if is_download or is_listing:
            kinds = _DOWNLOAD_FAULTS if is_download else _LISTING_FAULTS
        key = f"{req.method} {req.path}?{req.query}"
        fault = self.faults.draw(key, kinds)
        early = self._early_fault(fault, key)
        if early is not None:
            return early
        error = self.tokens.check(sid, req.headers.get("Authorization"))
        if error is not None:
            return message(401, error)
        try:
            resp = self._odata(req, sid, odata_path, redirected=rest.startswith(redirect_prefix))
        except FilterError as exc:
            return odata_error(400, exc.code, str(exc))
        return self._late_fault(fault, resp, is_listing, is_download)

    def _early_fault(self, fault: str | None, key: str) -> Response | None:
        if fault == "http-5xx":
            self.stats.count_fault(fault)
            status = (500, 502, 503)[int(unit(self.config.seed, "5xx", key) * 3)]
            return odata_error(status, "ServiceUnavailable", "simulated transient failure")
        if fault == "http-429":
            self.stats.count_fault(fault)
            resp = odata_error(429, "TooManyRequests", "simulated rate limit")
            resp.headers["Retry-After"] = "1"
            return resp
        return None

    def _late_fault(
        self, fault: str | None, resp: Response, is_listing: bool, is_download: bool
    ) -> Response:
        if fault == "slow":
            self.stats.count_fault(fault)
            resp.delay = self.config.faults.slow_seconds
        elif fault == "malformed-json" and is_listing and resp.status == 200:
            self.stats.count_fault(fault)
            resp.body = resp.body[: max(1, len(resp.body) // 2)] + b',"'  # cut mid-document
        elif fault == "truncate" and is_download and resp.status in (200, 206) and resp.body:
            self.stats.count_fault(fault)
            resp.send_bytes = len(resp.body) // 2
        return resp

    # -- OData resources ----------------------------------------------------------
    def _odata(self, req: Request, sid: str, path: str, redirected: bool) -> Response:
        service = self.stations[sid].service
        if path == "":
            sets = [{"name": s, "kind": "EntitySet", "url": s} for s in _SETS[service]]
            return json_response(200, {"@odata.context": "$metadata", "value": sets})
        m = _ENTITY.match(path)
        if not m or m["set"] not in _SETS[service]:
            return odata_error(404, "NotFound", f"no resource {path!r}")
        set_name, raw_id, tail = m["set"], m["id"], m["rest"]
        entity_id = raw_id.strip("'") if raw_id is not None else None
        if set_name == "Orders":
            return self._orders(req, sid, entity_id)
        if entity_id is None:
            if tail or req.method != "GET":
                return odata_error(404, "NotFound", f"no resource {path!r}")
            return self._listing(req, sid, set_name)
        catalog = self.catalogs[sid]
        rec = catalog.get(set_name, entity_id)
        if rec is None:
            return odata_error(404, "NotFound", f"no {set_name} with Id {entity_id}")
        if service == "lta" and req.method == "POST" and tail in ("", "/OData.CSC.Order"):
            catalog.materialize(rec)
            _, order = self.orders[sid].place(rec.id, rec.size or 0)
            return json_response(201, order)
        if req.method != "GET":
            return odata_error(405, "MethodNotAllowed", f"{req.method} not allowed here")
        if tail == "/$value":
            return self._download(req, sid, rec, redirected)
        if tail:
            return odata_error(404, "NotFound", f"no resource {path!r}")
        opts = parse_options(req.params, self.config.page_cap)
        return json_response(200, self._render(sid, set_name, rec, opts))

    def _listing(self, req: Request, sid: str, set_name: str) -> Response:
        opts = parse_options(req.params, self.config.page_cap)
        catalog = self.catalogs[sid]
        matched = catalog.query(set_name, opts.filter, opts.orderby)
        page = matched[opts.skip : opts.skip + opts.top]
        values = [self._render(sid, set_name, rec, opts) for rec in page]
        service = self.stations[sid].service
        return self._envelope(service, values, len(matched), opts)

    def _envelope(
        self, service: str, values: list[dict], total: int, opts: QueryOptions
    ) -> Response:
        if not values and service == "cadip":
            return Response(200, b"[]")  # CADIP quirk: empty result as a bare list
        if service == "lta":
            if not values:
                return odata_error(404, "NotFound", "no product matches the query")
            if len(values) == 1:
                return json_response(200, values[0])  # LTA quirk: a single hit is bare
        body: dict[str, Any] = {}
        if opts.count:
            body["@odata.count"] = total
        body["value"] = values
        return json_response(200, body)

    def _render(self, sid: str, set_name: str, rec: Record, opts: QueryOptions) -> dict:
        catalog = self.catalogs[sid]
        catalog.materialize(rec)
        e = rec.entity
        if "Attributes" in e and "attributes" not in opts.expand:
            e = {k: v for k, v in e.items() if k != "Attributes"}
        if set_name == "Sessions":
            if "files" in opts.expand:
                e = {**e, "Files": [f.entity for f in catalog.files_of(rec)]}
            if "qualityinfo" in opts.expand:
                quality = catalog.sets()["QualityInfo"]
                e = {
                    **e,
                    "qualityInfo": [q.entity for q in quality if q.entity["SessionId"] == rec.key],
                }
        return e

    # -- downloads ------------------------------------------------------------------
    def _download(self, req: Request, sid: str, rec: Record, redirected: bool) -> Response:
        service = self.stations[sid].service
        if service == "lta":
            status = self.orders[sid].status(rec.id)
            if status is None:
                return message(404, "No order for this product")
            if status != "completed":
                return message(403, "Not allowed yet")
        if sid == REDIRECT_STATION and not redirected:
            return Response(307, b"", {"Location": self._redirect_target(sid, rec)})
        return self._bytes(req, self.catalogs[sid].payload(rec))

    def _redirect_target(self, sid: str, rec: Record) -> str:
        if self.config.redirect == "same":
            return f"{self.base_url}/{sid}/Redirect/Files({rec.id})/$value"
        expires = int(time.time()) + _SIGNED_URL_TTL
        signature = self._sign(rec.id, expires)
        query = urllib.parse.urlencode({"expires": expires, "signature": signature})
        return f"{self.other_url}/{sid}/signed/Files({rec.id})/$value?{query}"

    def _sign(self, entity_id: str, expires: int) -> str:
        text = f"{entity_id}:{expires}".encode()
        return hmac.new(self._sign_key, text, hashlib.sha256).hexdigest()

    def _signed_download(self, req: Request, sid: str, rest: str) -> Response:
        if req.headers.get("Authorization") is not None:
            self.stats.count_leak()  # the client forwarded its station token to a third host
        m = re.fullmatch(r"signed/Files\(([^)]*)\)/\$value", rest)
        if sid not in self.catalogs or not m:
            return odata_error(404, "NotFound", f"no route {req.path!r}")
        key = f"{req.method} {req.path}?{req.query}"
        fault = self.faults.draw(key, _DOWNLOAD_FAULTS)
        early = self._early_fault(fault, key)
        if early is not None:
            return early
        try:
            expires = int(req.params.get("expires", ""))
        except ValueError:
            return message(403, "Missing or malformed signature")
        good = self._sign(m[1], expires)
        if not hmac.compare_digest(good, req.params.get("signature", "")) or expires < time.time():
            return message(403, "Signature invalid or expired")
        rec = self.catalogs[sid].get("Files", m[1])
        if rec is None:
            return odata_error(404, "NotFound", "no such file")
        resp = self._bytes(req, self.catalogs[sid].payload(rec))
        return self._late_fault(fault, resp, False, True)

    @staticmethod
    def _bytes(req: Request, data: bytes) -> Response:
        headers = {"Accept-Ranges": "bytes"}
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", req.headers.get("Range") or "")
        if rng and (rng[1] or rng[2]):
            size = len(data)
            if rng[1]:
                first = int(rng[1])
                last = min(int(rng[2]), size - 1) if rng[2] else size - 1
            else:  # suffix range: the last N bytes
                first, last = max(0, size - int(rng[2])), size - 1
            if first >= size or first > last:
                headers["Content-Range"] = f"bytes */{size}"
                return Response(416, b"", headers, "application/octet-stream")
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            return Response(206, data[first : last + 1], headers, "application/octet-stream")
        return Response(200, data, headers, "application/octet-stream")

    # -- LTA orders -------------------------------------------------------------------
    def _orders(self, req: Request, sid: str, order_id: str | None) -> Response:
        if req.method != "GET":
            return odata_error(405, "MethodNotAllowed", "orders are created on Products")
        orders = self.orders[sid].all()
        if order_id is not None:
            for order in orders:
                if order["Id"] == order_id:
                    return json_response(200, order)
            return odata_error(404, "NotFound", f"no order {order_id}")
        opts = parse_options(req.params, self.config.page_cap)
        if opts.filter:
            pred = compile_filter(opts.filter, _ORDER_SCHEMA).predicate
            orders = [o for o in orders if pred(o)]
        if opts.orderby:
            orders = sort_entities(orders, parse_orderby(opts.orderby, _ORDER_SCHEMA), lambda o: o)
        total = len(orders)
        return self._envelope("lta", orders[opts.skip : opts.skip + opts.top], total, opts)
