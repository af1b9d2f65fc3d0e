# The fleet's web apps: name -> port, plus who may skip forward auth and who is public.
# A plain data file (not a module), imported by services.nix.
{
  nas = {
    grafana = 3000;
    paperless = 28981;
    audiobookshelf = 13378;
    miniflux = 8070;
    vaultwarden = 8222;
  };
  public = [ "audiobookshelf" ];
  ownAuth = [ "vaultwarden" "audiobookshelf" ];
}
