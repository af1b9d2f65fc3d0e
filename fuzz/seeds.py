#!/usr/bin/env python3
"""Writes the named seed inputs of the proxy's fuzz targets into fuzz/corpus/<target>/ (the
formats: fuzz/properties.rs). The committed corpora are these seeds plus what `cargo fuzz cmin`
kept of a run; the seeds are kept by name so the traversal spellings of issue 15's F1 and the
real response heads stay in the replayed corpus whatever a minimization drops."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))

# (flags, upstream path, prefixes): the route shapes of issue 15's F1 tests and tsnsrv's
# unslashed prefixes.
SHAPES = {
    "share": ("", "", ["funnel:/pub/", "tailnet:/"]),
    "based": ("s", "/base", ["/pub/"]),
    "api": ("", "/base", ["funnel:/api/"]),
    "unslashed": ("s", "/base", ["funnel:/pub", "tailnet:/"]),
    "open": ("", "/base?k=v", []),
}

# F1's spellings, and clean paths that must pass byte for byte.
PATHS = {
    "dotdot": "/pub/../secret/s.txt",
    "enc-dotdot": "/pub/%2e%2e/secret/s.txt",
    "enc-dotdot-upper": "/pub/%2E%2E/secret",
    "half-enc-dotdot": "/pub/.%2e/secret",
    "dotdot-enc-slash": "/pub/..%2Fsecret/s.txt",
    "enc-slash-dotdot": "/pub/%2F../secret",
    "double-slash": "//secret/s.txt",
    "inner-double-slash": "/pub//../../secret",
    "dot": "/pub/./x",
    "backslash": "/pub\\..\\secret",
    "enc-backslash": "/pub/..%5Csecret",
    "double-enc": "/pub/%252e%252e/secret",
    "query": "/pub/a/../../secret?x=1",
    "api-dotdot": "/api/../other",
    "signed": "/pub/a%20b/%41?sig=x%2By",
    "clean": "/pub/x",
    "plain-prefix-match": "/public",
    "bare-prefix": "/pub",
    "root": "/",
    "absolute-form": "http://share.tailnet.test/pub/../secret",
    "asterisk": "*",
    # Issue 15, second pass: what lenient decoders and normalising upstreams read as a traversal.
    "nul-dotdot": "/pub/..%00/secret",
    "nul-between-dots": "/pub/.%00./secret",
    "nul-cuts": "/pub/..%00secret",
    "cr-lf": "/pub/..%0d%0a/secret",
    "overlong-dots": "/pub/%c0%ae%c0%ae/secret",
    "overlong3-dots": "/pub/%e0%80%ae%e0%80%ae/secret",
    "overlong-slash": "/pub/..%c0%afsecret",
    "fullwidth-dots": "/pub/%ef%bc%8e%ef%bc%8e/secret",
    "one-dot-leader": "/pub/%e2%80%a4%e2%80%a4/secret",
    "two-dot-leader": "/pub/%e2%80%a5/secret",
    "small-full-stop": "/pub/%ef%b9%92%ef%b9%92/secret",
    "halfwidth-ideographic-stop": "/pub/%ef%bd%a1%ef%bd%a1/secret",
    "ideographic-stop": "/pub/%e3%80%82%e3%80%82/secret",
    "fullwidth-slash": "/pub/..%ef%bc%8fsecret",
    "fullwidth-backslash": "/pub/..%ef%bc%bcsecret",
    "division-slash": "/pub/..%e2%88%95secret",
    "fraction-slash": "/pub/..%e2%81%84secret",
    "small-reverse-solidus": "/pub/..%ef%b9%a8secret",
    "reverse-solidus-operator": "/pub/..%e2%a7%b5secret",
    "fullwidth-percent": "/pub/%ef%bc%852e%ef%bc%852e/secret",
    "dotdot-space": "/pub/..%20/secret",
    "dot-space-dot": "/pub/.%20./secret",
    "three-dots": "/pub/.../secret",
    # The attacker pass: NFKC dots (U+FE30 is `..`, U+FE19 `...`) and spaces (NBSP, U+2000 to
    # U+200A, U+202F, U+205F, U+3000), raw and encoded; `..` before a decoded `?` or `#`.
    "nfkc-two-dots": "/pub/%EF%B8%B0/%EF%B8%B0/etc/passwd",
    "nfkc-two-dots-raw": "/pub/\ufe30/\ufe30/etc/passwd",
    "nfkc-three-dots": "/pub/%EF%B8%99/secret",
    "dotdot-nbsp": "/pub/..%C2%A0/secret",
    "dotdot-nbsp-raw": "/pub/..\u00a0/secret",
    "dotdot-en-quad": "/pub/..%E2%80%80/secret",
    "dotdot-hair-space": "/pub/..%E2%80%8A/secret",
    "dotdot-narrow-nbsp": "/pub/..%E2%80%AF/secret",
    "dotdot-math-space": "/pub/..%E2%81%9F/secret",
    "dotdot-ideographic-space": "/pub/..%E3%80%80/secret",
    "dotdot-enc-question": "/pub/..%3F/secret",
    "dotdot-enc-hash": "/pub/..%23/x",
    "enc-dotdot-question": "/pub/%2e%2e%3fx",
    "dotdot-space-question": "/pub/..%20%3F",
    "utf8-name": "/pub/caf%C3%A9.jpg",
    "backslash-host": "/\\evil.example/x/..",
    "slashes-backslash-host": "//\\evil.example/",
}


def request_path_seeds():
    out = {}
    for shape, (flags, base, prefixes) in SHAPES.items():
        # Every shape through Funnel; the tailnet (no escape property, only the redirects and
        # byte-for-byte forwarding) on the first.
        for via in ("f", "") if shape == "share" else ("f",):
            for name, path in PATHS.items():
                key = f"seed-{shape}-{'funnel' if via else 'tailnet'}-{name}"
                out[key] = "\n".join([via + flags, base, path, *prefixes]).encode()
    return out


HEADS = {
    "length": b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "chunked-and-length": b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
    "length-and-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "chunked-not-last": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nbody until close",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nLink: </s.css>; rel=preload\r\nContent-Length: 0\r\n\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "http10-close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    "http10-keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
    "hop-by-hop": b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok",
    "connection-names": b"HTTP/1.1 200 OK\r\nConnection: close, X-Private\r\nX-Private: 1\r\nContent-Length: 0\r\n\r\n",
    "no-content": b"HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n",
    "not-modified": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "conflicting-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
    "repeated-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "bad-status": b"HTTP/1.1 099 Low\r\n\r\n",
    "no-reason": b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
    "lf-only": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "empty-value": b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaces:   \r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
    "incomplete": b"HTTP/1.1 200 OK\r\nServer: up\r\n",
    "many-fields": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(127)) + b"Content-Length: 0\r\n\r\n",
    "too-many-fields": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(129)) + b"\r\n",
    "chunked-bad-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    "chunked-missing-crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    "obs-text": b"HTTP/1.1 200 OK\r\nX-Name: J\xc3\xbcrgen\r\nContent-Length: 0\r\n\r\n",
}


def response_head_seeds():
    out = {}
    for name, wire in HEADS.items():
        out[f"seed-{name}"] = bytes([0, 0]) + wire
        out[f"seed-{name}-bytewise"] = bytes([0, 1]) + wire
        out[f"seed-{name}-head"] = bytes([1, 7]) + wire
    return out


def main():
    for target, seeds in (("request_path", request_path_seeds()), ("response_head", response_head_seeds())):
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
