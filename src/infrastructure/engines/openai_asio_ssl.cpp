// The one translation unit that compiles Asio's SSL support (BOOST_ASIO_SEPARATE_COMPILATION);
// linked by whatever speaks TLS (the openai engine, the test tree's fake upstream).
#include <boost/asio/ssl/impl/src.hpp>
