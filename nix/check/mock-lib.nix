# The few nixpkgs `lib` functions the flake uses, re-implemented with
# builtins so ci/check-flake can evaluate the flake without nixpkgs.
# Test scaffolding only; the flake itself never imports this file.
let
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
in {
  inherit hasPrefix;

  removePrefix = prefix: s:
    if hasPrefix prefix s
    then builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s
    else s;

  makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/bin") packages);

  escapeShellArg = arg: let
    string = toString arg;
  in
    if builtins.match "[[:alnum:],._+:@%/-]+" string == null
    then "'${builtins.replaceStrings ["'"] ["'\\''"] string}'"
    else string;

  optionalString = cond: s:
    if cond
    then s
    else "";

  optionals = cond: list:
    if cond
    then list
    else [];

  # Evaluates the filter on nothing; the filter is tested on its own.
  cleanSourceWith = {
    src,
    filter ? (_path: _type: true),
    name ? "source",
  }: {
    _isLibCleanSourceWith = true;
    origSrc = src;
    inherit filter name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
}
