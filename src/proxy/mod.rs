//! The data plane that takes tsnsrv's place: routes, listeners, certificates, metrics, the admin
//! socket. This version holds the request-path rules that must match tsnsrv exactly; the
//! listeners and the forwarder land with issue 4.

// Used by the request path, which lands with the listeners (issue 4).
#![allow(dead_code)]

pub mod prefix;
