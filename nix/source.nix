# The part of the checkout that builds and runs capOS.
#
# Everything except Nix glue, prose and build outputs, so that editing
# flake.nix, nix/ or docs/ does not rebuild the kernel or change the ISO.
# Contracts, templates and manifests stay in: the apps point CAPOS_ROOT here.
{lib}: let
  skippedTopLevel = [
    ".git"
    ".github"
    "docs"
    "flake.lock"
    "flake.nix"
    "nix"
    "target"
  ];

  # `rel` is a path relative to the checkout root, e.g. "kernel/src/main.rs".
  keep = rel: let
    top = builtins.head (builtins.match "([^/]*).*" rel);
  in
    !(builtins.elem top skippedTopLevel)
    && builtins.match "result(-.*)?" top == null;

  root = ../.;
in {
  inherit keep;

  tree = lib.cleanSourceWith {
    src = root;
    name = "capos-source";
    filter = path: _type: keep (lib.removePrefix (toString root + "/") (toString path));
  };
}
