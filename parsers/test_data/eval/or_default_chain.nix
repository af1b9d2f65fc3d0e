let hosts = { storage = { x = 1; }; }; in [ (hosts.cloud or { }) (hosts.storage or { }) ]
