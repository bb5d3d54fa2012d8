# Launcher for python actions, embedded in whisk-container-proxy (protocol: src/launchers/mod.rs).
# stdin: one JSON message per line (first the init message, then /run messages);
# fd 3: one reply line per message; stdout/stderr: the action's logs, each run ended by the sentinel.
import glob
import json
import os
import site
import sys
import traceback

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
out = os.fdopen(3, "w", encoding="utf-8")
action = None
ow_keys = set()


def reply(line):
    out.write(line + "\n")
    out.flush()


def set_env(values):
    for k, v in (values or {}).items():
        os.environ[k] = v if isinstance(v, str) else json.dumps(v)


def init(msg):
    global action
    try:
        set_env(msg.get("env"))
        main = msg.get("main") or "main"
        directory = msg.get("dir")
        if directory:
            sys.path.insert(0, directory)
            # A zip may bring its dependencies in a `virtualenv` folder, as OpenWhisk's Python
            # runtime accepts: its site-packages (and their .pth files) come after the zip root.
            for site_dir in sorted(glob.glob(os.path.join(directory, "virtualenv", "lib", "python*", "site-packages"))):
                site.addsitedir(site_dir)
            filename = os.path.join(directory, "__main__.py")
            if not os.path.isfile(filename):
                raise Exception("Zip file does not include __main__.py")
            with open(filename, encoding="utf-8") as f:
                source = f.read()
            os.chdir(directory)
        else:
            filename = "__main__.py"
            source = msg.get("code") or ""
        scope = {"__name__": "__whisk_action__", "__file__": filename}
        exec(compile(source, filename, "exec"), scope)
        fn = scope.get(main)
        if not callable(fn):
            raise Exception("Action entrypoint '%s' is not a function." % main)
        action = fn
        reply(json.dumps({"ok": True}))
    except Exception as e:  # noqa: BLE001 - any failure of the action's code is reported
        traceback.print_exc()
        reply(json.dumps({"error": "Initialization has failed due to: %s" % repr(e)}))


def run_env(msg):
    for k in ow_keys:
        os.environ.pop(k, None)
    ow_keys.clear()
    os.environ.pop("TRACEPARENT", None)
    for k, v in msg.items():
        if k == "value":
            continue
        if k == "traceparent":
            os.environ["TRACEPARENT"] = str(v)
            continue
        name = "__OW_" + k.upper()
        os.environ[name] = v if isinstance(v, str) else json.dumps(v)
        ow_keys.add(name)


def run(msg):
    if action is None:
        line = "503 " + json.dumps({"error": "System not initialized."})
    else:
        try:
            run_env(msg)
            result = action(msg.get("value"))
            if isinstance(result, (dict, list)):
                line = json.dumps(result, ensure_ascii=False)
            else:
                line = "502 " + json.dumps({"error": "The action did not return a dictionary."})
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            line = "502 " + json.dumps({"error": "An error has occurred: %s" % repr(e)})
    reply(line)
    sys.stdout.write(SENTINEL + "\n")
    sys.stdout.flush()
    sys.stderr.write(SENTINEL + "\n")
    sys.stderr.flush()


def main():
    initialised = False
    for text in sys.stdin:
        if not text.strip():
            continue
        try:
            msg = json.loads(text)
        except ValueError as e:
            reply("400 " + json.dumps({"error": "bad message: %s" % e}))
            continue
        if not initialised:
            initialised = True
            init(msg)
        else:
            run(msg)


main()
