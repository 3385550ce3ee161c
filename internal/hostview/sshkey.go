package hostview

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
)

// hostKey is an SSH key pair as OpenSSH stores it: the private key in its
// own format (PROTOCOL.key in OpenSSH's sources: "openssh-key-v1",
// unencrypted) and the public key as an authorized_keys line.
type hostKey struct {
	private, public []byte
}

// keyTypes are the host key types vmlab generates, by the name in
// ssh_host_<name>_key, with their generators. rsaBits is OpenSSH's default.
var keyTypes = map[string]func(comment string) (hostKey, error){
	"ed25519": newEd25519Key,
	"ecdsa":   newECDSAKey,
	"rsa":     newRSAKey,
}

const rsaBits = 3072

func newEd25519Key(comment string) (hostKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return hostKey{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	var blob, secret wire
	blob.str([]byte("ssh-ed25519")).str(pub)
	secret.str([]byte("ssh-ed25519")).str(pub).str(priv) // priv is seed || pub
	return encodeKey("ssh-ed25519", blob, secret, comment), nil
}

func newECDSAKey(comment string) (hostKey, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return hostKey{}, fmt.Errorf("generate ecdsa key: %w", err)
	}
	const name = "ecdsa-sha2-nistp256"
	point := priv.PublicKey().Bytes() // uncompressed, as SSH wants it
	var blob, secret wire
	blob.str([]byte(name)).str([]byte("nistp256")).str(point)
	secret.str([]byte(name)).str([]byte("nistp256")).str(point).mpint(new(big.Int).SetBytes(priv.Bytes()))
	return encodeKey(name, blob, secret, comment), nil
}

func newRSAKey(comment string) (hostKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return hostKey{}, fmt.Errorf("generate rsa key: %w", err)
	}
	e := big.NewInt(int64(k.E))
	p, q := k.Primes[0], k.Primes[1]
	var blob, secret wire
	blob.str([]byte("ssh-rsa")).mpint(e).mpint(k.N)
	secret.str([]byte("ssh-rsa")).mpint(k.N).mpint(e).mpint(k.D).
		mpint(new(big.Int).ModInverse(q, p)).mpint(p).mpint(q)
	return encodeKey("ssh-rsa", blob, secret, comment), nil
}

// encodeKey wraps a key's public blob and private fields in OpenSSH's
// formats.
func encodeKey(name string, blob, secret wire, comment string) hostKey {
	var check [4]byte
	rand.Read(check[:])
	var section wire
	section = append(section, check[:]...)
	section = append(section, check[:]...) // the same twice: a decryption check
	section = append(section, secret...)
	section.str([]byte(comment))
	for i := byte(1); len(section)%8 != 0; i++ { // pad to the "none" cipher's block
		section = append(section, i)
	}
	out := wire("openssh-key-v1\x00")
	out.str([]byte("none")).str([]byte("none")).str(nil)
	out = binary.BigEndian.AppendUint32(out, 1) // one key
	out.str(blob).str(section)
	return hostKey{
		private: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: out}),
		public:  fmt.Appendf(nil, "%s %s %s\n", name, base64.StdEncoding.EncodeToString(blob), comment),
	}
}

// wire builds SSH's binary encoding (RFC 4251, section 5).
type wire []byte

// str appends a string: its length, then its bytes.
func (w *wire) str(b []byte) *wire {
	*w = binary.BigEndian.AppendUint32(*w, uint32(len(b)))
	*w = append(*w, b...)
	return w
}

// mpint appends a non-negative integer: big-endian, with a leading zero
// byte when the high bit is set (it would read as negative).
func (w *wire) mpint(n *big.Int) *wire {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return w.str(b)
}
