# Shared service table: name -> local port. Imported as a function by every host.
{ extra ? { } }:
{
  jellyfin = 8096;
  audiobookshelf = 13378;
  paperless = 28981;
  grafana = 3000;
  uptime = 3001;
} // extra
