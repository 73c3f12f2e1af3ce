// controlcenter/util.libsonnet: engine-neutral helpers shared by the
// templates (list/object cleanup, name and key conversions, value
// formatting). Pure functions of their arguments; nothing here reads the
// state. Exposed to repos as `(import 'controlcenter/lib.libsonnet').util`.
//
// Engine neutrality: only std functions present in both go-jsonnet 0.20+
// and jrsonnet 0.5 are used, and numbers are never turned into text with
// std.toString or `+` (go-jsonnet prints 0.1 as "0.10000000000000001",
// jrsonnet as "0.1"); std.manifestJsonMinified prints them identically.
{
  // The label Argo CD owns; the library never sets it.
  instanceLabel:: 'app.kubernetes.io/instance',

  // compact(arr): `arr` without its null elements. Constructors that return
  // null (e.g. an override `hpa(svc):: null`) drop out of `manifests` this way.
  compact(arr):: std.filter(function(x) x != null, arr),

  // withoutNulls(obj): `obj` without the fields whose value is null (shallow).
  withoutNulls(obj):: { [k]: obj[k] for k in std.objectFields(obj) if obj[k] != null },

  // withoutInstance(labels): `labels` without app.kubernetes.io/instance.
  withoutInstance(labels)::
    { [k]: labels[k] for k in std.objectFields(labels) if k != $.instanceLabel },

  // text(v): v as a string: strings unchanged, anything else as minified JSON
  // (2 -> "2", true -> "true", [1] -> "[1]"), identical in every engine.
  text(v):: if std.type(v) == 'string' then v else std.manifestJsonMinified(v),

  // quantity(q): a resource quantity as Kubernetes wants it in manifests
  // (a string); null stays null.
  quantity(q):: if q == null then null else $.text(q),

  // isAlnum(c): c is one ASCII letter or digit.
  isAlnum(c):: (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'),

  // upperSnake(s): 'new_checkout' -> 'NEW_CHECKOUT', 'newCheckout' ->
  // 'NEW_CHECKOUT', 'dark-mode.v2' -> 'DARK_MODE_V2'. Every character that is
  // not an ASCII letter or digit becomes '_'; a lower-case letter or digit
  // followed by an upper-case letter gets a '_' in between.
  upperSnake(s)::
    // Names of ASCII letters, digits, '_', '-' and '.' (nearly all) are
    // cut at each camelCase boundary and upper-cased whole; only the rare
    // name with another character is converted character by character.
    local plain = std.strReplace(std.strReplace(s, '-', '_'), '.', '_');
    local word = 'abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    local isUpper(c) = c >= 'A' && c <= 'Z';
    local isLowerOrDigit(c) = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if std.length(std.stripChars(plain, word)) == 0 then
      if std.asciiLower(plain) == plain then std.asciiUpper(plain)
      else
        local n = std.length(plain);
        local cuts = [0] + [
          i
          for i in std.range(1, n - 1)
          if isUpper(plain[i]) && isLowerOrDigit(plain[i - 1])
        ] + [n];
        std.asciiUpper(std.join('_', [
          std.substr(plain, cuts[j], cuts[j + 1] - cuts[j])
          for j in std.range(0, std.length(cuts) - 2)
        ]))
    else
      local cs = std.stringChars(s);
      std.join('', [
        (if i > 0 && isUpper(cs[i]) && isLowerOrDigit(cs[i - 1]) then '_' else '')
        + (if $.isAlnum(cs[i]) then std.asciiUpper(cs[i]) else '_')
        for i in std.range(0, std.length(cs) - 1)
      ]),

  // dnsName(s): the DNS-1123 form controlcenter uses for names: lower case,
  // '_' and '.' become '-' ('media_bucket' -> 'media-bucket').
  dnsName(s):: std.strReplace(std.strReplace(std.asciiLower(s), '_', '-'), '.', '-'),

  // uniq(arr): the distinct elements of arr, sorted.
  uniq(arr):: std.set(arr),
}
