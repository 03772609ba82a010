# Writes objects.p0/p2/p4/p5: the same objects pickled by CPython at protocols 0, 2,
# 4 and 5, for the pickle reader's tests. Run: python3 make_objects.py
import pickle, re, collections, sys
class Route:
    pass
class Conn:
    def __init__(self, cid): self.cid = cid
shared = Conn('op1')
r = Route()
r.rate = 0.02
r.connector = shared
r.connectors = [shared, Conn('op2')]
r.filter = re.compile(r'^\+?255', 0)
r.big = 2**40
r.neg = -5
r.huge_neg = -2**60
r.text = 'ünï'
r.raw = b'\x00\xff'
r.flags = {'http_send': True, 'dlr': False, 'n': None}
r.ordered = collections.OrderedDict([('a', 1), ('b', 2)])
r.tags = {1, 2}
r.pair = (1, 'x')
data = [r, {'k': shared}]
for proto in (0, 2, 4, 5):
    with open(f'objects.p{proto}', 'wb') as out:
        out.write(pickle.dumps(data, proto))
