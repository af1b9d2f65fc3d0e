# Where each app listens on its host: one table, as many homelab repositories keep it, so that
# two apps never take the same port. The tsnsrv entries (gateway.nix, hosts/*.nix) read it.
#
# `https` is the port the tailnet's HTTPS names answer on: 443 on a real tailnet. `migrate demo`
# runs this homelab on loopback and writes its own copy of this file with free ports (and socket
# paths under its directory); nothing else in the example changes.
{
  https = 443;

  # storage: media
  jellyfin = 8096;
  jellyseerr = 5055;
  sonarr = 8989;
  radarr = 7878;
  lidarr = 8686;
  readarr = 8787;
  prowlarr = 9696;
  bazarr = 6767;
  qbittorrent = 8080;
  sabnzbd = 8085;
  tautulli = 8181;
  navidrome = 4533;
  audiobookshelf = 13378;
  kavita = 5000;
  komga = 25600;
  calibre-web = 8083;
  # storage: photos, files, documents
  photoprism = 2342;
  immich = 2283;
  nextcloud = 8180;
  paperless = 28981;
  filebrowser = 8088;
  syncthing = "/run/syncthing/gui.sock";
  stirling-pdf = 8087;
  # storage: home
  homepage = 8082;
  home-assistant = 8123;
  zigbee2mqtt = 8099;
  esphome = 6052;
  frigate = 5001;
  node-red = 1880;
  mealie = 9925;
  tandoor = 8092;
  grocy = 8093;
  actual = 5006;
  firefly = 8094;
  # storage: reading and tools
  linkding = 9091;
  wallabag = 8095;
  freshrss = 8097;
  it-tools = 8098;
  cyberchef = 8100;
  excalidraw = 8101;
  drawio = 8102;
  code-server = 4444;
  jupyter = 8888;
  gitea = 3001;
  woodpecker = 8103;
  # storage: monitoring
  prometheus = 9090;
  alertmanager = 9093;
  grafana = 3000;
  uptime-kuma = 3002;
  scrutiny = 8104;
  netdata = 19999;
  glances = 61208;
  speedtest = 8105;
  cockpit = 9095;

  # cloud
  authelia = 9092;
  vaultwarden = 8222;
  ntfy = 2586;
  gatus = 8106;
  plausible = 8107;
  umami = 8108;
  element = 8109;
  owncast = 8110;
  adguard = 80;
  n8n = 5678;
  searxng = 8111;
  rss-bridge = 8112;
  miniflux = 8113;
}
