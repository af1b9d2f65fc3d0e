let m = import ./lib_helper.nix; in m.greet "tailnet"
