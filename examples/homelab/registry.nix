# Which service runs on which host, and the facts about each that the gateway module needs.
# A service name is also its tailnet name: `jellyfin` answers at https://jellyfin.<tailnet>.
let
  ports = import ./ports.nix;
in
{
  tailnet = "tailnet.test";

  hosts = {
    storage = {
      inherit (ports)
        jellyfin jellyseerr sonarr radarr lidarr readarr prowlarr bazarr qbittorrent sabnzbd
        tautulli navidrome audiobookshelf kavita komga photoprism immich nextcloud paperless
        filebrowser stirling-pdf homepage esphome frigate node-red mealie tandoor grocy actual
        firefly linkding wallabag freshrss it-tools cyberchef excalidraw drawio code-server
        jupyter gitea woodpecker prometheus alertmanager grafana uptime-kuma glances speedtest
        zigbee2mqtt;
      calibre = ports.calibre-web;
      # Second names people bookmarked long ago: the same app twice.
      jf = ports.jellyfin;
      photos = ports.photoprism;
      www = ports.homepage;
    };
    cloud = {
      auth = ports.authelia;
      inherit (ports)
        vaultwarden ntfy gatus plausible umami element owncast n8n searxng rss-bridge miniflux;
      status = ports.gatus;
    };
  };

  # Apps with their own login (or none worth having): no forward auth in front.
  bypassAuth = [
    "auth" "jellyfin" "jf" "navidrome" "audiobookshelf" "immich" "nextcloud" "vaultwarden"
    "ntfy" "gitea" "homepage" "www" "plausible" "umami" "element" "owncast" "status" "gatus"
    "filebrowser"
  ];

  # Reachable from the internet through Funnel.
  funnels = [ "audiobookshelf" "filebrowser" ];
}
