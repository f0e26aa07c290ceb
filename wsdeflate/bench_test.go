package wsdeflate

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkCompress is the once-per-broadcast cost: compressing a
// message's shared encoding.
//
//	go test -run '^$' -bench Compress -benchmem ./wsdeflate
func BenchmarkCompress(b *testing.B) {
	chat := []byte("destination:/topic/chat\nmessage-id:n1-42\ncontent-type:application/json\ncontent-length:150\n\n" +
		`{"room":"general","user":"ann","text":"Has anyone seen the release notes for today's build? The link in the channel topic is broken.","ts":1765112345123}` + "\x00")
	var sb strings.Builder
	for i := 0; sb.Len() < 10<<10; i++ {
		fmt.Fprintf(&sb, `{"id":%d,"sku":"SKU-%05d","name":"Item %d","price":%d.%02d},`, i, i*37%100000, i, i*13%500, i*7%100)
	}
	for _, tc := range []struct {
		name string
		p    []byte
	}{{"chat", chat}, {"10KB", []byte(sb.String())}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.p)))
			var z []byte
			for i := 0; i < b.N; i++ {
				z = Compress(tc.p)
			}
			b.ReportMetric(float64(len(z)), "out-B")
		})
	}
}
