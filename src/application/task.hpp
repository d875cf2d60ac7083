#pragma once
/// The one async type of the core: a Boost.Asio coroutine.

#include <boost/asio/awaitable.hpp>

namespace chat::app {

template <class T = void>
using Task = boost::asio::awaitable<T>;

}  // namespace chat::app
