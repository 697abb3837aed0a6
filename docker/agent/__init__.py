"""The runbox sandbox agent.

Runs inside every sandbox container as `python3 -u /opt/runbox/agent/__main__.pyc`
(see __main__.py) and executes code for runbox. It speaks the protocol of
docs/agent-protocol.md over stdio (frames on stdin/stdout) or http
(RUNBOX_TRANSPORT=http). Standard library only, Python >= 3.9.

Environment:
  RUNBOX_WORKDIR    work dir (default /workspace)
  RUNBOX_PRELOAD    comma-separated modules imported before `ready`
  RUNBOX_TRANSPORT  stdio (default) or http
  RUNBOX_AGENT_PORT http port (default 8080)
  RUNBOX_AGENT_KEY  http request key (required for http; removed from the environment)
  RUNBOX_PREFORK    0: fork each run's child on demand instead of ahead of time

The modules, in the order they build on each other (no module imports one below it):
  state            what the agent process knows about itself, set up by main
  json_codec       JSON through the C encoder and scanner
  protocol         frames, the exec request, result and error messages
  files            the request's input files, written below the work dir
  images           the images a run saved in the work dir
  capture          a run's stdout and stderr: caps, stream events, the poll loop
  values           a run's value as JSON, or a bounded repr
  python_exec      compiling and running user Python in a namespace
  outputs          a run's outputs: items, their caps, the agent's end of their channel
  mimebundle       an object as a Jupyter MIME bundle, in the code's process
  figures          matplotlib's figures as outputs: pyplot.show() and those left open
  ipython_shim     a small IPython.display, for images without IPython
  display          the code's end of the outputs channel: display(), the run's switch
  processes        reaping, killing what a run left, freezing a session, OOM kills
  privileges       the agent's channel out of the code's reach (not dumpable, no key)
  child            forked children: their set-up, a one-shot run's code, bash
  oneshot          a one-shot run: its child forked ahead or on demand
  kernel           a python session: its interpreter process, kept between executions
  dispatch         an incoming message to its run and its answer
  stdio_transport  frames on the container's stdin and stdout
  http_transport   a small HTTP/1.1 server carrying the same frames
  preload          modules imported before `ready`, matplotlib's cache and warm-up
  main             start-up: the channel, the environment, then a transport
"""

# Only what every sandbox needs is imported at start-up: a fresh sandbox pays each
# import with CPU time, and that CPU bounds how many fresh sandboxes the machine makes
# per second. ast, base64, linecache, reprlib, threading and traceback are imported by
# the runs that use them; json and signal are used through their C modules (see
# json_codec.py; the signal package only adds enums, and with them the enum module).
# Every module of the package is imported at start-up and none later: the agent then
# takes the package out of sys.modules (see main.py), where an import would load fresh
# copies of its modules, or the code's own module of the same name.
