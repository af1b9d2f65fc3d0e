# Service registry for the two hosts: ports from ports.toml, plus who bypasses forward auth,
# who is on the funnel and what depends on what.
{ self }:
{
  hosts = builtins.fromTOML (builtins.readFile "${self}/ports.toml");

  # Services that do their own authentication: no forward-auth in front of them.
  bypassAuth = [
    "audiobookshelf" "auth" "dex" "gitea" "grafana" "hass" "immich" "jellyfin"
    "jf" "n8n" "ntfy" "plex" "vault" "yarr"
  ];

  # Services reachable from the public internet (Tailscale Funnel).
  funnels = [ "jellyfin" "plex" "immich" "photos" "audiobookshelf" "hass" "ntfy" "yarr" "www" "home" "filebrowser" ];

  dependsOn = {
    grafana = [ "auth" ];
    n8n = [ "auth" ];
    owntracks-ui = [ "owntracks" ];
    jf = [ "jellyfin" ];
    photos = [ "photoprism" ];
  };
}
