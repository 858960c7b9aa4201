# Offline evaluation of flake.nix and flake.lock for ci/check-flake.
#
# Calls the flake's `outputs` with stand-ins for nixpkgs and rust-overlay
# (nothing is fetched), validates flake.lock against flake.nix, and returns
# a report as a list of strings (nothing is written to the Nix store;
# ci/check-flake evaluates it with `--xml`, which keeps nix's diagnostics on
# stderr apart from the data). Items:
#   OUTPUT <kind> <name>            an output attribute that exists
#   APP <name> <capos words...>     the `capos` subcommand an app runs
#   APPFLAG <name> <--flag>         a flag the app adds before the user's arguments
#   APPSCRIPT <name> <script>       the app's script text, newlines and all (for shellcheck)
#   TOOLCHAIN <channel>             channel read from rust-toolchain.toml
#   LOCK <node> <owner>/<repo> <rev> <lastModified> <narHash>
#   ERROR <message>                 anything wrong
# Test scaffolding only; the flake itself never imports this file.
{root ? ../..}: let
  system = "x86_64-linux";

  flake = import (root + "/flake.nix");
  lock = builtins.fromJSON (builtins.readFile (root + "/flake.lock"));

  concatMap = f: list: builtins.concatLists (map f list);
  takeWhile = pred: list:
    if list == [] || !(pred (builtins.head list))
    then []
    else [(builtins.head list)] ++ takeWhile pred (builtins.tail list);
  when = cond: lines:
    if cond
    then lines
    else [];

  # --- evaluate the outputs against stand-ins ---------------------------
  mockRustOverlay = {
    overlays.default = final: _prev: {
      rust-bin.fromRustupToolchainFile = file: let
        toolchain = (builtins.fromTOML (builtins.readFile file)).toolchain;
      in
        final.mockDrv "rust-${toolchain.channel}" {inherit (toolchain) channel;};
    };
  };

  self =
    outputs
    // {
      outPath = toString root;
      lastModified = 1;
      narHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
      rev = "0000000000000000000000000000000000000000";
    };

  outputs = flake.outputs {
    inherit self;
    nixpkgs = ./mock-nixpkgs.nix;
    rust-overlay = mockRustOverlay;
  };

  kinds = ["packages" "apps" "checks" "devShells"];
  outputLines =
    concatMap (
      kind:
      # deepSeq: evaluate every attribute, so a typo anywhere fails here.
        map (name: builtins.deepSeq outputs.${kind}.${system}.${name} "OUTPUT ${kind} ${name}")
        (builtins.attrNames (outputs.${kind}.${system} or {}))
    )
    kinds
    ++ when (outputs ? formatter.${system}) [(builtins.deepSeq outputs.formatter.${system} "OUTPUT formatter ${system}")];

  appLines = concatMap (name: let
    app = outputs.apps.${system}.${name};
    # The stand-in writeShellApplication makes the script text its "store
    # path", so the program is "<script text>/bin/capos-<name>".
    suffix = "/bin/capos-${name}";
    programLength = builtins.stringLength app.program;
    suffixLength = builtins.stringLength suffix;
    hasSuffix = programLength >= suffixLength && builtins.substring (programLength - suffixLength) suffixLength app.program == suffix;
    script = builtins.substring 0 (programLength - suffixLength) app.program;
    lines = builtins.filter builtins.isString (builtins.split "\n" script);
    calls = builtins.filter (m: m != null) (map (builtins.match ''[[:space:]]*exec capos ([^"]+) "\$@"[[:space:]]*'') lines);
    # Subcommand words come first; then `--flag value` pairs the app adds.
    tokens = builtins.filter (t: builtins.isString t && t != "") (builtins.split " " (builtins.head (builtins.head calls)));
    isFlag = t: builtins.substring 0 2 t == "--";
    words = builtins.filter (t: builtins.match "[a-z0-9][a-z0-9-]*" t != null) (takeWhile (t: !isFlag t) tokens);
    flags = builtins.filter isFlag tokens;
  in
    (when (app.type or null != "app") ["ERROR app ${name}: type is not \"app\""])
    ++ (when (!hasSuffix) ["ERROR app ${name}: program does not end in ${suffix}"])
    ++ (
      if builtins.length calls == 1
      then ["APP ${name} ${builtins.concatStringsSep " " words}"] ++ map (f: "APPFLAG ${name} ${f}") flags
      else ["ERROR app ${name}: expected exactly one `exec capos <subcommand> ... \"$@\"` line, found ${toString (builtins.length calls)}"]
    )
    ++ ["APPSCRIPT ${name} ${script}"]) (builtins.attrNames (outputs.apps.${system} or {}));

  # --- flake.lock structure ---------------------------------------------
  nodes = lock.nodes or {};
  nodeNames = builtins.filter (n: n != "root") (builtins.attrNames nodes);
  isHexRev = s: builtins.isString s && builtins.match "[0-9a-f]{40}" s != null;
  isSha256Sri = s: builtins.isString s && builtins.match "sha256-[A-Za-z0-9+/]{43}=" s != null;

  structureErrors =
    when (lock.version or null != 7) ["flake.lock: version is ${builtins.toJSON (lock.version or null)}, expected 7"]
    ++ when (lock.root or null != "root") ["flake.lock: \"root\" is not \"root\""]
    ++ when (!(nodes ? root.inputs)) ["flake.lock: node \"root\" has no inputs"];

  nodeErrors = name: let
    node = nodes.${name};
    locked = node.locked or null;
    field = f: locked.${f} or null;
    where = "flake.lock: node ${name}";
  in
    if locked == null
    then ["${where}: no \"locked\" entry"]
    else
      when (field "type" != "github") ["${where}: locked.type is ${builtins.toJSON (field "type")}, expected \"github\""]
      ++ when (!builtins.isString (field "owner")) ["${where}: locked.owner missing"]
      ++ when (!builtins.isString (field "repo")) ["${where}: locked.repo missing"]
      ++ when (!isHexRev (field "rev")) ["${where}: locked.rev is not 40 hex digits"]
      ++ when (!isSha256Sri (field "narHash")) ["${where}: locked.narHash is not a sha256-... SRI hash"]
      ++ when (!(builtins.isInt (field "lastModified") && field "lastModified" > 0)) ["${where}: locked.lastModified is not a positive integer"]
      ++ when (!(node ? original)) ["${where}: no \"original\" entry"];

  # An input reference is a node name, or a path of input names from root
  # (what `follows` becomes).
  resolvePath = path: let
    step = acc: inputName:
      if acc == null
      then null
      else let
        ref = nodes.${acc}.inputs.${inputName} or null;
      in
        if builtins.isString ref
        then ref
        else if builtins.isList ref
        then resolvePath ref
        else null;
  in
    builtins.foldl' step "root" path;

  referenceErrors = concatMap (name:
    concatMap (inputName: let
      ref = nodes.${name}.inputs.${inputName};
      target =
        if builtins.isString ref
        then ref
        else resolvePath ref;
    in
      when (target == null || !(nodes ? ${target})) ["flake.lock: node ${name}, input ${inputName}: reference ${builtins.toJSON ref} leads nowhere"])
    (builtins.attrNames (nodes.${name}.inputs or {})))
  (builtins.attrNames nodes);

  # --- flake.lock against flake.nix -------------------------------------
  # Only `github:owner/repo[/ref]` inputs are understood here.
  parseGithub = url: let
    m = builtins.match "github:([^/]+)/([^/?]+)(/([^?]+))?" url;
  in
    if m == null
    then null
    else {
      owner = builtins.elemAt m 0;
      repo = builtins.elemAt m 1;
      ref = builtins.elemAt m 3;
    };

  rootInputs = nodes.root.inputs or {};
  flakeInputs = flake.inputs or {};

  inputErrors = name: let
    spec = flakeInputs.${name};
    url =
      if builtins.isString spec
      then spec
      else spec.url or "";
    want = parseGithub url;
    nodeName = rootInputs.${name} or null;
    original = nodes.${nodeName}.original or {};
    follows = spec.inputs or {};
  in
    if want == null
    then ["flake.nix: input ${name}: only github: URLs are checked offline (${url})"]
    else if !builtins.isString nodeName || !(nodes ? ${nodeName})
    then ["flake.lock: input ${name} of flake.nix is not locked (run: nix flake lock)"]
    else
      when (original.owner or null != want.owner || original.repo or null != want.repo || original.ref or null != want.ref)
      ["flake.lock: input ${name}: original ${builtins.toJSON original} does not match flake.nix url ${url} (run: nix flake lock)"]
      ++ concatMap (sub: let
        wanted = follows.${sub}.follows or "";
        got = nodes.${nodeName}.inputs.${sub} or null;
      in
        when (wanted != "" && got != builtins.filter builtins.isString (builtins.split "/" wanted))
        ["flake.lock: input ${name}/${sub} should follow ${wanted}, lock has ${builtins.toJSON got} (run: nix flake lock)"])
      (builtins.attrNames follows);

  staleInputErrors = concatMap (name:
    when (!(flakeInputs ? ${name})) ["flake.lock: root input ${name} is not in flake.nix (run: nix flake lock)"])
  (builtins.attrNames rootInputs);

  lockErrors =
    structureErrors
    ++ concatMap nodeErrors nodeNames
    ++ referenceErrors
    ++ concatMap inputErrors (builtins.attrNames flakeInputs)
    ++ staleInputErrors;

  lockLines = map (name: let
    l = nodes.${name}.locked or {};
  in "LOCK ${name} ${l.owner or "?"}/${l.repo or "?"} ${l.rev or "?"} ${toString (l.lastModified or 0)} ${l.narHash or "?"}")
  nodeNames;

  channelLine = let
    toolchain = (builtins.fromTOML (builtins.readFile (root + "/rust-toolchain.toml"))).toolchain;
  in "TOOLCHAIN ${toolchain.channel}";

  report =
    outputLines
    ++ appLines
    ++ [channelLine]
    ++ lockLines
    ++ map (e: "ERROR ${e}") lockErrors;
in
  report
