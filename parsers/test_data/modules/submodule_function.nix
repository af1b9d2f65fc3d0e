# rule: a submodule given as a function receives its name
{ services.tsnsrv.services.fn = { name, ... }: { toURL = "http://${name}.local:80"; }; }
