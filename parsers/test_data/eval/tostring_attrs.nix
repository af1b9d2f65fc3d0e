let s = { __toString = self: "svc-${self.name}"; name = "x"; }; in "${s}"
