final: prev: {
  tsnsrv-wrapped = prev.tsnsrv;
}
