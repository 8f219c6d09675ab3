"""Checks of command-line values against this machine, run before any work; each returns what is wrong (naming the
options) or None. (Checks between options alone live with the parsers, in `vlunet_basicsr_cli.parsers`, torch-free.)
"""
import errno
import socket


def port_error(host, port):
    """``--host`` / ``--port``: whether a server could listen there now (binding like uvicorn, SO_REUSEADDR)."""
    if not 0 < port < 65536:
        return f'--port {port}: a port is 1-65535'
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        return f'--host {host}: not an address of this machine ({error.strerror})'
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f'port {port} is in use; choose another with --port'
            return f'cannot listen on --host {host} --port {port}: {error.strerror}'
    return None
