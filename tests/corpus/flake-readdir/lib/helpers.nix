{ lib }:
{
  localURL = port: "http://127.0.0.1:${toString port}";
  proxyHeaders = name: {
    "X-Forwarded-Host" = "${name}.tail1234.ts.net";
  };
}
